"""Independent reference for next fire times: cronsim (Debian-cron DST semantics).

stdin: JSON list of {"cron": EXPR, "tz": IANA, "after": RFC3339, "n": N}
stdout: JSON list of lists of RFC3339 instants (UTC offsets included)."""
import json
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

from cronsim import CronSim

out = []
for case in json.load(sys.stdin):
    start = datetime.fromisoformat(case["after"].replace("Z", "+00:00")).astimezone(ZoneInfo(case["tz"]))
    it = CronSim(case["cron"], start)
    out.append([next(it).isoformat() for _ in range(case["n"])])
json.dump(out, sys.stdout)
