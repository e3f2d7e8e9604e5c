#!/usr/bin/env python3
"""Follow partner-contacts events on NATS JetStream, one JSON line per event.

The service publishes each event as a protobuf `partnerportal.contacts.v1.Event`
to the stream PARTNER_CONTACTS_EVENTS, under `partner_contacts.events.<type>`.
This script generates the Python classes from the repository's .proto files
at start (with grpcio-tools, into a temporary directory), pulls the events,
and prints each as {"msg_id": ..., "subject": ..., "event": {...}}.

    python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
    .venv/bin/python consumer.py --url nats://127.0.0.1:4222
    .venv/bin/python consumer.py --durable audit --count 10 --idle-timeout 30

Without --durable it reads the whole stream from the beginning each run; with
--durable NAME the server remembers what was acknowledged, so the next run
with the same NAME continues where this one stopped. Exit status: 0 when
--count or --idle-timeout ends the run, 1 when NATS or the stream cannot be
reached, 130 on Ctrl-C.
"""

import argparse
import asyncio
import importlib
import importlib.resources
import json
import sys
import tempfile
import time
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from grpc_tools import protoc

BATCH = 10  # messages per fetch
FETCH_WAIT = 5.0  # seconds one fetch waits for messages
CONNECT_TIMEOUT = 5.0  # seconds to wait for the first connection


def load_event_class(proto_dir: Path):
    """Compile the v1 protos with --python_out into a temp dir and import Event."""
    sources = sorted(str(p.relative_to(proto_dir)) for p in (proto_dir / "partnerportal/contacts/v1").glob("*.proto"))
    if not sources:
        sys.exit(f"no .proto files under {proto_dir}/partnerportal/contacts/v1 (see --proto-dir)")
    with tempfile.TemporaryDirectory(prefix="partner-contacts-proto-") as out, \
            importlib.resources.as_file(importlib.resources.files("grpc_tools") / "_proto") as wkt:
        if protoc.main(["protoc", f"-I{proto_dir}", f"-I{wkt}", f"--python_out={out}", *sources]) != 0:
            sys.exit("protoc failed to compile the .proto files (see above)")
        sys.path.insert(0, out)
        try:
            return importlib.import_module("partnerportal.contacts.v1.event_pb2").Event
        finally:
            sys.path.remove(out)


async def follow(args, Event) -> int:
    last_error, connected = None, False

    async def on_error(e):  # before connecting: kept for the message below
        nonlocal last_error
        last_error = e
        if connected:  # afterwards nats-py reconnects by itself; just say so
            print(f"warning: NATS: {e}", file=sys.stderr)

    try:
        nc = await asyncio.wait_for(nats.connect(args.url, error_cb=on_error), CONNECT_TIMEOUT)
    except (asyncio.TimeoutError, OSError, nats.errors.Error) as e:
        print(f"error: cannot connect to NATS at {args.url}: {last_error or e}", file=sys.stderr)
        return 1
    connected = True
    try:
        js = nc.jetstream()
        try:
            await js.stream_info(args.stream)
        except nats.js.errors.NotFoundError:
            print(f"error: stream {args.stream} does not exist on {args.url} (has the service published yet?)", file=sys.stderr)
            return 1
        except (nats.js.errors.ServiceUnavailableError, nats.errors.TimeoutError):
            print(f"error: no JetStream at {args.url} (is the server started with -js?)", file=sys.stderr)
            return 1
        # No durable: an ephemeral consumer, which starts at the stream's first
        # message (the default deliver policy "all") and is deleted by the
        # server shortly after this run ends.
        sub = await js.pull_subscribe(args.subject, durable=args.durable, stream=args.stream)

        # The stream drops a re-published event within its 2-minute duplicate
        # window; a redelivery (ack lost, ack wait expired) can still reach
        # us, so drop any event id this run has already printed.
        seen = set()
        printed, last_seen = 0, time.monotonic()
        while args.count is None or printed < args.count:
            # Never fetch more than --count still needs: extra ones would stay
            # unacknowledged and come back to a durable consumer only after ack wait.
            batch = BATCH if args.count is None else min(BATCH, args.count - printed)
            wait = FETCH_WAIT
            if args.idle_timeout is not None:
                wait = max(0.1, min(wait, args.idle_timeout - (time.monotonic() - last_seen)))
            try:
                msgs = await sub.fetch(batch, timeout=wait)
            except nats.errors.TimeoutError:
                if args.idle_timeout is not None and time.monotonic() - last_seen >= args.idle_timeout:
                    break
                continue
            last_seen = time.monotonic()
            for msg in msgs:
                msg_id = (msg.headers or {}).get("Nats-Msg-Id")
                if msg_id is not None and msg_id in seen:
                    await msg.ack()
                    continue
                try:
                    event = Event.FromString(msg.data)
                except DecodeError as e:
                    print(f"warning: {msg.subject} {msg_id}: not an Event ({e}); terminated", file=sys.stderr)
                    await msg.term()  # never redelivered: retrying cannot help
                    continue
                line = {"msg_id": msg_id, "subject": msg.subject,
                        "event": json_format.MessageToDict(event, preserving_proto_field_name=True)}
                print(json.dumps(line), flush=True)
                await msg.ack()
                seen.add(msg_id)
                printed += 1
        return 0
    except nats.errors.Error as e:  # e.g. the connection was lost for good
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        # flush() returns once the server has answered a ping sent after the
        # last ack, so every ack has reached it. (Not drain(): with a pull
        # subscription it can wait out its 30 s drain_timeout for late fetch
        # status replies.)
        if nc.is_connected:
            await nc.flush()
        await nc.close()


def main() -> int:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="nats://127.0.0.1:4222", help="NATS server URL")
    p.add_argument("--stream", default="PARTNER_CONTACTS_EVENTS")
    p.add_argument("--subject", default="partner_contacts.events.>", help="subject filter")
    p.add_argument("--durable", help="durable consumer name (default: ephemeral, from the start)")
    p.add_argument("--count", type=int, help="stop after N events (default: run until interrupted)")
    p.add_argument("--idle-timeout", type=float, metavar="SECONDS", help="stop when nothing arrives for this long")
    p.add_argument("--proto-dir", type=Path, default=here / "../../proto", help="root of the .proto files")
    args = p.parse_args()
    if args.count is not None and args.count < 1:
        p.error("--count must be at least 1")
    if args.idle_timeout is not None and args.idle_timeout <= 0:
        p.error("--idle-timeout must be positive")
    Event = load_event_class(args.proto_dir.resolve())
    try:
        return asyncio.run(follow(args, Event))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
