# The task file. The README's two commands are `make app` and `make test`.
.PHONY: setup app test test-fast lint fix bench clean

VENV := .venv/bin
PYTEST_ARGS ?=

setup:
	@bash scripts/setup.sh

app: setup
	@$(VENV)/mge demo
	$(VENV)/streamlit run streamlit_app.py --server.headless true --browser.gatherUsageStats false

test: setup lint
	@bash scripts/ensure_chromium.sh
	$(VENV)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

test-fast: setup
	$(VENV)/pytest -n 2 -m "not browser" $(PYTEST_ARGS)

lint: setup
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/lint-imports
	$(VENV)/mypy graph db

fix: setup
	$(VENV)/ruff check --fix .
	$(VENV)/ruff format elicit/ graph/ db/ pages/ streamlit_app.py

bench: setup
	$(VENV)/python bench/run_all.py

clean:
	rm -rf .venv .pytest_cache .ruff_cache test-artifacts
