"""A few calls through the wheel on another CPython (the wheel is abi3, built once for >= 3.9).

Run by `make test-python` with each of the pyenv interpreters it finds (3.9 and 3.13)."""

import asyncio
import sys
import tempfile

import trainyard

p = trainyard.Platform.init(tempfile.mkdtemp())
r = p.training.create("m", {"model_config": {"model_type": "ranking"}})
assert (r.run_number, r.model_type, r.status) == (1, "ranking", "pending"), r


async def main() -> trainyard.Run:
    return await p.training.get_async(r.id)


assert asyncio.run(main()) == r
try:
    p.training.get(9)
    raise SystemExit("expected NotFound")
except trainyard.NotFound:
    pass
print("abi3 smoke ok on", sys.version.split()[0])
