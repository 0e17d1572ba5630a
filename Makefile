# The two commands a new user needs (see README):
#   make run   - install what is missing, import a synthetic catalog, serve the API on localhost:8000
#   make test  - install what is missing (incl. servers), start the local cluster stack, run every test
.PHONY: run test lint bench services-up services-down

run:
	@./infra/bootstrap.sh run

test:
	@./infra/bootstrap.sh test

lint:
	@./infra/bootstrap.sh lint

bench:
	@./infra/bootstrap.sh bench
