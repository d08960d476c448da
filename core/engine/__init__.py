"""Lightning modules, data contract and schedules that run every plugin's components."""
