"""A gRPC C-core (Debian python3-grpcio) echo server for sidemirror's tests.

Serves sidemirror.test.v1.Echo (test/harness/grpc-echo.proto) with raw-bytes handlers and a
hand-written protobuf codec, so no generated code is needed. C-core, unlike grpc-js, rejects a
request without `te: trailers`, which is why the proxying tests use it.

Protocol with test/harness/grpc.ts: stdout carries one JSON object per line:
  {"event": "listening", "port": N}                       once bound
  {"event": "start", "id": I, "method": ..., ...}           when a call reaches a handler
  {"event": "end", "id": I, "outcome": ..., ...}            when that call is over
The server exits when its stdin closes, so it cannot outlive the test process.
Options: --name NAME; TLS from env SM_TLS_CERT / SM_TLS_KEY (PEM), SM_TLS_CA and
SM_TLS_REQUIRE_CLIENT_CERT=1 for mTLS.
"""

import base64
import hashlib
import itertools
import json
import os
import sys
import threading
import time
from concurrent import futures

try:
    import grpc
except ImportError as err:
    sys.stderr.write(f"py_grpc_server: cannot import grpc ({err}); install python3-grpcio (scripts/test-deps.sh)\n")
    sys.exit(3)

SERVICE = "/sidemirror.test.v1.Echo/"
MAX_MESSAGE = 16 * 1024 * 1024
MAX_DELAY_MS = 30_000
MAX_COUNT = 10_000
STATUS_BY_CODE = {s.value[0]: s for s in grpc.StatusCode}

_out_lock = threading.Lock()
_ids = itertools.count(1)


def emit(obj):
    with _out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


# --- protobuf wire format, only what the two messages need ---

def read_varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, pos


def to_int32(v):
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def decode_request(buf):
    req = {"message": "", "payload": b"", "count": 0, "fail_with_code": 0, "delay_ms": 0, "omit_payload": False}
    names = {3: "count", 4: "fail_with_code", 5: "delay_ms"}
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, pos = read_varint(buf, pos)
            if field in names:
                req[names[field]] = to_int32(v)
            elif field == 6:
                req["omit_payload"] = v != 0
        elif wire == 2:
            n, pos = read_varint(buf, pos)
            if pos + n > len(buf):
                raise ValueError("truncated field")
            data = bytes(buf[pos:pos + n])
            pos += n
            if field == 1:
                req["message"] = data.decode("utf-8")
            elif field == 2:
                req["payload"] = data
        elif wire == 5:
            pos += 4
        elif wire == 1:
            pos += 8
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return req


def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_reply(message, payload, index, authority, sha, nbytes, nmessages, server):
    out = bytearray()
    for field, data in ((1, message.encode()), (2, payload), (4, authority.encode()), (5, sha.encode()), (8, server.encode())):
        if data:
            out += varint(field << 3 | 2) + varint(len(data)) + data
    for field, v in ((3, index), (6, nbytes), (7, nmessages)):
        if v:
            out += varint(field << 3) + varint(v)
    return bytes(out)


# --- calls ---

class Call:
    """What one call saw; reported as a start and an end event."""

    def __init__(self, method, context, server_name):
        self.id = next(_ids)
        self.method = method
        self.context = context
        self.server = server_name
        self.authority = authority_of(context)
        self.hash = hashlib.sha256()
        self.bytes = 0
        self.messages = 0
        self.ended = False
        metadata = [[k, base64.b64encode(v).decode() if isinstance(v, bytes) else v] for k, v in context.invocation_metadata()]
        emit({"event": "start", "id": self.id, "method": method, "authority": self.authority, "metadata": metadata})
        context.add_callback(self.on_terminated)
        echo = [(k, v) for k, v in context.invocation_metadata() if k.startswith("echo-")]
        context.send_initial_metadata([("x-echo-server", server_name), ("x-echo-authority", self.authority)] + echo)

    def receive(self, raw):
        req = decode_request(raw)
        self.messages += 1
        self.bytes += len(req["payload"])
        self.hash.update(req["payload"])
        return req

    def reply(self, req, index, with_payload):
        payload = req["payload"] if with_payload and not req["omit_payload"] else b""
        return encode_reply(req["message"], payload, index, self.authority, self.hash.hexdigest(), self.bytes, self.messages, self.server)

    def trailers(self):
        self.context.set_trailing_metadata([
            ("x-echo-trailer", self.server),
            ("x-echo-messages", str(self.messages)),
            ("x-echo-payload-sha256", self.hash.hexdigest()),
        ])

    def wait(self, req):
        delay = min(max(req["delay_ms"], 0), MAX_DELAY_MS)
        if delay:
            time.sleep(delay / 1000)

    def fail_if_asked(self, req):
        code = req["fail_with_code"]
        if code:
            self.trailers()
            self.finish("failed", code)
            status = STATUS_BY_CODE.get(code, grpc.StatusCode.UNKNOWN)
            self.context.abort(status, f"failed as asked: {code}")

    def finish(self, outcome, code=0):
        if self.ended:
            return
        self.ended = True
        emit({"event": "end", "id": self.id, "outcome": outcome, "code": code, "messages": self.messages,
              "payloadBytes": self.bytes, "payloadSha256": self.hash.hexdigest()})

    def on_terminated(self):
        self.finish("cancelled", 1)


def authority_of(context):
    # grpcio has no public accessor for :authority; its call details carry it.
    details = getattr(getattr(context, "_rpc_event", None), "call_details", None)
    host = getattr(details, "host", b"") or b""
    return host.decode("latin-1") if isinstance(host, bytes) else str(host)


def handlers(name):
    def unary(raw, context):
        call = Call("Unary", context, name)
        req = call.receive(raw)
        call.wait(req)
        call.fail_if_asked(req)
        call.trailers()
        call.finish("ok")
        return call.reply(req, 0, True)

    def server_stream(raw, context):
        call = Call("ServerStream", context, name)
        req = call.receive(raw)
        for i in range(min(max(req["count"], 1), MAX_COUNT)):
            call.wait(req)
            if i == 0:
                call.fail_if_asked(req)
            yield call.reply(req, i, True)
        call.trailers()
        call.finish("ok")

    def client_stream(raw_iter, context):
        call = Call("ClientStream", context, name)
        last = None
        for raw in raw_iter:
            last = call.receive(raw)
        if last is None:
            last = decode_request(b"")
        call.wait(last)
        call.fail_if_asked(last)
        call.trailers()
        call.finish("ok")
        return call.reply(last, 0, False)

    def bidi(raw_iter, context):
        call = Call("Bidi", context, name)
        for i, raw in enumerate(raw_iter):
            req = call.receive(raw)
            call.wait(req)
            call.fail_if_asked(req)
            yield call.reply(req, i, True)
        call.trailers()
        call.finish("ok")

    return {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    }


class EchoHandler(grpc.GenericRpcHandler):
    def __init__(self, name):
        self.methods = handlers(name)

    def service(self, details):
        if not details.method.startswith(SERVICE):
            return None
        return self.methods.get(details.method[len(SERVICE):])


def main():
    name = "python"
    if "--name" in sys.argv:
        name = sys.argv[sys.argv.index("--name") + 1]
    options = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE),
               ("grpc.so_reuseport", 0)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=options)
    server.add_generic_rpc_handlers((EchoHandler(name),))
    cert, key = os.environ.get("SM_TLS_CERT"), os.environ.get("SM_TLS_KEY")
    if cert and key:
        ca = os.environ.get("SM_TLS_CA")
        creds = grpc.ssl_server_credentials(
            [(key.encode(), cert.encode())],
            root_certificates=ca.encode() if ca else None,
            require_client_auth=os.environ.get("SM_TLS_REQUIRE_CLIENT_CERT") == "1")
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    if port == 0:
        sys.stderr.write("py_grpc_server: could not bind 127.0.0.1:0\n")
        sys.exit(4)
    server.start()
    emit({"event": "listening", "port": port})
    sys.stdin.read()  # returns at EOF: the test process closed our stdin or died
    server.stop(0)


if __name__ == "__main__":
    main()
