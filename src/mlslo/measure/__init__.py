"""Stage 4, measure: SLIs (one module per family in :mod:`.sli`), windows, error budgets,
burn rates and :func:`.evaluate.evaluate`, the one evaluation of a spec from rollups. Pure."""
