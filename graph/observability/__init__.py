"""What a turn did, seen afterwards: the turn log, latency statistics, /why's report, secrets masked in logs."""
