"""Domain logic, free of Flask: registry, lifecycle, jobs, dispatch, triggers, tenancy."""
