"""One gallery for a fleet of devices through their broker: sealed records, state, sync."""
