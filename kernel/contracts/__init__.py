"""Typed contracts shared by every component: events on the log and HTTP API schemas."""
