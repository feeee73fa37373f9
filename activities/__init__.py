"""Activities: the side effects of jobs, grouped by what they depend on."""
