from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from kernel.settings import load_settings


def test_env_beats_file_and_file_beats_defaults(tmp_path: Path) -> None:
    config = tmp_path / "emporium.toml"
    config.write_text("[emporium]\nsearch_cache_entries = 10\nsearch_stock_out_grace_s = 2.5\n")
    env = {"EMPORIUM_CONFIG": str(config), "EMPORIUM_SEARCH_CACHE_ENTRIES": "20"}
    settings = load_settings(env=env, data_dir=str(tmp_path / "data"))
    assert settings.search_cache_entries == 20
    assert settings.search_stock_out_grace_s == 2.5
    assert settings.search_url == f"tantivy:///{tmp_path / 'data' / 'search'}"
    assert load_settings(env={}, data_dir=str(tmp_path)).search_stock_out_grace_s == 1.0


def test_a_negative_grace_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="search_stock_out_grace_s"):
        load_settings(env={"EMPORIUM_SEARCH_STOCK_OUT_GRACE_S": "-1"})


def test_env_text_becomes_typed_values() -> None:
    env = {"EMPORIUM_PORT": " 8100 ", "EMPORIUM_INPROCESS_PROJECTORS": "off"}
    settings = load_settings(env={**env, "EMPORIUM_FEED_MAX_BYTES": "1e3"})
    assert (settings.port, settings.inprocess_projectors, settings.feed_max_bytes) == (8100, False, 1000)
    assert load_settings(env={"EMPORIUM_INPROCESS_PROJECTORS": "Yes"}).inprocess_projectors is True


def test_a_bad_value_names_its_env_var() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"\$\.port.*EMPORIUM_PORT"):
        load_settings(env={"EMPORIUM_PORT": "eighty"})
    with pytest.raises(msgspec.ValidationError, match="EMPORIUM_INPROCESS_PROJECTORS"):
        load_settings(env={"EMPORIUM_INPROCESS_PROJECTORS": "maybe"})


def test_a_bad_value_in_the_file_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "emporium.toml"
    config.write_text('[emporium]\nport = "high"\n')
    with pytest.raises(msgspec.ValidationError, match=r"emporium\.toml"):
        load_settings(env={"EMPORIUM_CONFIG": str(config)})


def test_the_analytics_jobs_take_their_support_and_holdout_from_the_settings() -> None:
    from analytics.jobs.runner import JobParams, job_params

    env = {
        "EMPORIUM_TRENDING_MIN_COUNT": "2",
        "EMPORIUM_TRENDING_MIN_ACTORS": "2",
        "EMPORIUM_RECS_HOLDOUT": "0.3",
    }
    s = load_settings(env=env)
    params = job_params(s.trending_min_count, s.trending_min_actors, s.recs_holdout)
    assert (params.trending.min_count, params.trending.min_actors, params.recommendations.holdout) == (
        2,
        2,
        0.3,
    )
    defaults = load_settings(env={})
    assert (
        job_params(defaults.trending_min_count, defaults.trending_min_actors, defaults.recs_holdout)
        == JobParams()
    )  # the defaults are the jobs' own
    for job in ("trending", "recommendations"):  # part of each job's version: a change recomputes
        assert params.salt(job) != JobParams().salt(job)
    with pytest.raises(msgspec.ValidationError, match="EMPORIUM_RECS_HOLDOUT"):
        load_settings(env={"EMPORIUM_RECS_HOLDOUT": "1"})
    with pytest.raises(msgspec.ValidationError, match="EMPORIUM_TRENDING_MIN_COUNT"):
        load_settings(env={"EMPORIUM_TRENDING_MIN_COUNT": "0"})
