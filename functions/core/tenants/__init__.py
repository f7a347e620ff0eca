"""Many tenants: the organisations this deployment serves (docs/tenants.md)."""
