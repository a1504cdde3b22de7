"""Results of runs: KPIs (one registry), runs and replications, compare, theory."""
