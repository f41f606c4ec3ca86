"""trainyard.predict against a TF-Serving-shaped HTTP server running in this process (a
stdlib server on a thread: a blocking predict that held the GIL would hang here)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import trainyard
from trainyard import BackendError, ValidationError


class Handler(BaseHTTPRequestHandler):
    """/v1/models/recommender:predict ranks a fixed catalog by each instance's `boost`;
    other model names answer the way a failing server does."""

    requests: list[tuple[str, Any]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer(self, status: int, body: Any) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Handler.requests.append((self.path, body))
        if self.path == "/v1/models/recommender:predict":
            predictions = []
            for inst in body["instances"]:
                if not isinstance(inst.get("customer_id"), str):
                    return self.answer(400, {"error": "customer_id: expected a string"})
                scores = {f"P{i}": (i * inst.get("boost", 1.0)) % 7 for i in range(5)}
                ranked = sorted(scores, key=lambda k: -scores[k])
                predictions.append({"product_ids": ranked, "scores": [scores[k] for k in ranked]})
            return self.answer(200, {"predictions": predictions})
        if self.path == "/v1/models/busy:predict":
            return self.answer(503, {"error": "overloaded"})
        if self.path == "/v1/models/odd:predict":
            return self.answer(200, {"outputs": []})
        return self.answer(404, "<html>no such model</html>")


@pytest.fixture
def server() -> Iterator[str]:
    Handler.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_predict_posts_instances_and_returns_predictions(server: str) -> None:
    instances = [{"customer_id": "C1", "boost": 1.0}, {"customer_id": "C2", "boost": 3.0}]
    predictions = trainyard.predict(server + "/", instances)
    assert Handler.requests == [("/v1/models/recommender:predict", {"instances": instances})]
    assert len(predictions) == 2
    for p in predictions:
        assert all(isinstance(i, str) for i in p["product_ids"])
        assert p["scores"] == sorted(p["scores"], reverse=True)
    assert predictions[0]["product_ids"][0] == "P4" and predictions[1]["product_ids"][0] == "P2"


def test_http_errors_map_to_the_hierarchy(server: str) -> None:
    with pytest.raises(ValidationError, match="400 Bad Request: customer_id: expected a string") as e:
        trainyard.predict(server, [{"customer_id": 12}])
    assert e.value.field == "instances"
    with pytest.raises(ValidationError, match="404 Not Found: <html>no such model"):
        trainyard.predict(server, [{"customer_id": "C1"}], model_name="nope")
    with pytest.raises(BackendError, match="503 Service Unavailable: overloaded"):
        trainyard.predict(server, [{"customer_id": "C1"}], model_name="busy")
    with pytest.raises(BackendError, match='without "predictions"'):
        trainyard.predict(server, [{"customer_id": "C1"}], model_name="odd")


def test_unreachable_endpoint_is_a_backend_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BackendError, match=f"POST http://127.0.0.1:{port}/v1/models/recommender:predict"):
        trainyard.predict(f"http://127.0.0.1:{port}", [{"customer_id": "C1"}], timeout=5)


def test_bad_input_is_refused_before_sending(server: str) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"endpoint_url": "127.0.0.1:8501"}, "endpoint_url"),
        ({"endpoint_url": "ftp://host"}, "endpoint_url"),
        ({"instances": []}, "instances"),
        ({"instances": {"customer_id": "C1"}}, "instances"),
        ({"model_name": "../admin"}, "model_name"),
        ({"timeout": 0.0}, "timeout"),
    ]
    for override, field in cases:
        kwargs: dict[str, Any] = {"endpoint_url": server, "instances": [{"customer_id": "C1"}], **override}
        with pytest.raises(ValidationError) as e:
            trainyard.predict(**kwargs)
        assert e.value.field == field, override
    assert Handler.requests == []


def test_predict_async_runs_concurrently(server: str) -> None:
    async def main() -> list[list[Any]]:
        return await asyncio.gather(
            *(trainyard.predict_async(server, [{"customer_id": f"C{i}", "boost": float(i)}]) for i in range(8))
        )

    answers = asyncio.run(main())
    assert len(answers) == 8 and all(len(a) == 1 for a in answers)
    assert len(Handler.requests) == 8

    async def failing() -> None:
        await trainyard.predict_async(server, [{"customer_id": 3}])

    with pytest.raises(ValidationError, match="expected a string"):
        asyncio.run(failing())
