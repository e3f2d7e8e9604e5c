#!/usr/bin/env python3
"""Call partner-contacts from Python with the generated client (grpcio).

    clients/generate      # target/clients/python (the client), target/clients/venv
    export PARTNER_CONTACTS_TOKEN=...   # see the README, "Identity"
    PYTHONPATH=target/clients/python target/clients/venv/bin/python \\
        clients/python/example.py --target 127.0.0.1:50051 --partner acme

It saves the sandbox contact information of --partner (UpdateContacts),
sends the same save again as a client retry would, reads it back
(GetContacts), asks the onboarding gate, and reads the production contact
information, which a fresh partner has not saved: NOT_FOUND. Each step
prints one JSON line; any other answer than the expected one exits 1.

The channel loads clients/service-config.json (per-method timeouts, retries
of UNAVAILABLE for the methods safe to retry), so a database outage of a few
seconds delays these calls instead of failing them. Copy from here what you
need: the channel options, the bearer token, the request_id on saves and how
a status code is read from grpc.RpcError.
"""

import argparse
import json
import os
import sys
import uuid
from pathlib import Path

import grpc
from google.protobuf import json_format

from partnerportal.contacts.v1 import contact_info_pb2, contacts_service_pb2, contacts_service_pb2_grpc

DEFAULT_SERVICE_CONFIG = Path(__file__).resolve().parent.parent / "service-config.json"


def channel(target: str, service_config: Path, tls: bool) -> grpc.Channel:
    options = [
        # The retry policy and timeouts of clients/service-config.json, as is.
        ("grpc.service_config", service_config.read_text()),
        ("grpc.enable_retries", 1),
    ]
    if tls:
        return grpc.secure_channel(target, grpc.ssl_channel_credentials(), options=options)
    return grpc.insecure_channel(target, options=options)


def show(step: str, **fields) -> None:
    print(json.dumps({"step": step, **fields}), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="127.0.0.1:50051", help="host:port of the server")
    parser.add_argument("--partner", default="acme", help="partner id whose sandbox is saved")
    parser.add_argument("--service-config", type=Path, default=DEFAULT_SERVICE_CONFIG)
    parser.add_argument("--tls", action="store_true", help="TLS with the system's CA certificates")
    parser.add_argument("--token-env", default="PARTNER_CONTACTS_TOKEN",
                        help="environment variable holding the bearer token (unset: no credentials, development servers only)")
    args = parser.parse_args()

    token = os.environ.get(args.token_env)
    metadata = [("authorization", f"Bearer {token}")] if token else []
    sandbox = f"partners/{args.partner}/environments/sandbox/contactInfo"
    production = f"partners/{args.partner}/environments/production/contactInfo"

    with channel(args.target, args.service_config, args.tls) as ch:
        contacts = contacts_service_pb2_grpc.ContactsServiceStub(ch)
        try:
            # A save with a request_id: resending it (after a timeout, or the
            # channel's own retry) returns the first answer and saves once.
            request = contacts_service_pb2.UpdateContactsRequest(
                contact_info=contact_info_pb2.ContactInfo(
                    name=sandbox,
                    technical_emergency_contacts=[
                        contact_info_pb2.Contact(email=f"pager@{args.partner}.example", display_name="On-call pager"),
                    ],
                    technical_non_emergency_contacts=[
                        contact_info_pb2.Contact(email=f"integrations@{args.partner}.example", language_code="en"),
                    ],
                ),
                request_id=str(uuid.uuid4()),
            )
            saved = contacts.UpdateContacts(request, metadata=metadata)
            show("UpdateContacts", name=saved.name, etag=saved.etag)
            again = contacts.UpdateContacts(request, metadata=metadata)
            show("UpdateContacts (same request_id)", etag=again.etag)
            if again.etag != saved.etag:
                return fail("the resent save was applied twice")

            read = contacts.GetContacts(contacts_service_pb2.GetContactsRequest(name=sandbox), metadata=metadata)
            show("GetContacts", contact_info=json_format.MessageToDict(read))
            emails = [c.email for c in read.technical_emergency_contacts]
            if read.etag != saved.etag or emails != [f"pager@{args.partner}.example"]:
                return fail("GetContacts did not return what was saved")

            gate = contacts.CheckOnboardingGate(
                contacts_service_pb2.CheckOnboardingGateRequest(name=sandbox), metadata=metadata)
            show("CheckOnboardingGate", open=gate.open, findings=len(gate.findings))
        except grpc.RpcError as e:
            return fail(f"{e.code().name}: {e.details()}")

        try:
            contacts.GetContacts(contacts_service_pb2.GetContactsRequest(name=production), metadata=metadata)
            return fail(f"{production} exists: expected NOT_FOUND for a partner that never saved it")
        except grpc.RpcError as e:
            show("GetContacts (never saved)", code=e.code().name)
            if e.code() != grpc.StatusCode.NOT_FOUND:
                return fail(f"expected NOT_FOUND, got {e.code().name}: {e.details()}")
    return 0


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
