// Call partner-contacts from TypeScript (Node) with the generated client and
// Connect-ES over gRPC. clients/generate copies this file next to the
// generated code (target/clients/typescript) and type-checks it there; to run
// it:
//
//   clients/generate
//   target/clients/typescript/node_modules/.bin/tsc -p target/clients/typescript
//   PARTNER_CONTACTS_TOKEN=... node target/clients/typescript/dist/example.js \
//     --target 127.0.0.1:50051 --partner acme --service-config clients/service-config.json
//
// The same steps as clients/python/example.py: save the sandbox contact
// information of --partner with a request_id, send the same save again,
// read it back, ask the gate, and read the production contact information,
// which a fresh partner has not saved (NOT_FOUND). One JSON line per step;
// exit 1 on any other answer.
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";

import { create, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { ContactInfoSchema, ContactSchema } from "./partnerportal/contacts/v1/contact_info_pb.js";
import {
  ContactsService,
  UpdateContactsRequestSchema,
} from "./partnerportal/contacts/v1/contacts_service_pb.js";
import { serviceConfigInterceptor, type ServiceConfig } from "./service-config.js";

const { values: args } = parseArgs({
  options: {
    target: { type: "string", default: "127.0.0.1:50051" },
    partner: { type: "string", default: "acme" },
    "service-config": { type: "string", default: "clients/service-config.json" },
    tls: { type: "boolean", default: false },
    "token-env": { type: "string", default: "PARTNER_CONTACTS_TOKEN" },
  },
});

function show(step: string, fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ step, ...fields }));
}

class Unexpected extends Error {}

async function main(): Promise<void> {
  const config = JSON.parse(readFileSync(args["service-config"], "utf8")) as ServiceConfig;
  const transport = createGrpcTransport({
    baseUrl: `${args.tls ? "https" : "http"}://${args.target}`,
    interceptors: [serviceConfigInterceptor(config)],
  });
  const client = createClient(ContactsService, transport);
  const token = process.env[args["token-env"]];
  const options = token ? { headers: { authorization: `Bearer ${token}` } } : {};
  const partner = args.partner;
  const sandbox = `partners/${partner}/environments/sandbox/contactInfo`;
  const production = `partners/${partner}/environments/production/contactInfo`;

  // A save with a request_id: resending it returns the first answer and
  // saves once, so the interceptor may retry it.
  const request = create(UpdateContactsRequestSchema, {
    contactInfo: create(ContactInfoSchema, {
      name: sandbox,
      technicalEmergencyContacts: [
        create(ContactSchema, { email: `pager@${partner}.example`, displayName: "On-call pager" }),
      ],
      technicalNonEmergencyContacts: [
        create(ContactSchema, { email: `integrations@${partner}.example`, languageCode: "en" }),
      ],
    }),
    requestId: randomUUID(),
  });
  const saved = await client.updateContacts(request, options);
  show("UpdateContacts", { name: saved.name, etag: saved.etag });
  const again = await client.updateContacts(request, options);
  show("UpdateContacts (same request_id)", { etag: again.etag });
  if (again.etag !== saved.etag) throw new Unexpected("the resent save was applied twice");

  const read = await client.getContacts({ name: sandbox }, options);
  show("GetContacts", { contact_info: toJson(ContactInfoSchema, read) });
  const emails = read.technicalEmergencyContacts.map((c) => c.email);
  if (read.etag !== saved.etag || emails.join() !== `pager@${partner}.example`) {
    throw new Unexpected("GetContacts did not return what was saved");
  }

  const gate = await client.checkOnboardingGate({ name: sandbox }, options);
  show("CheckOnboardingGate", { open: gate.open, findings: gate.findings.length });

  try {
    await client.getContacts({ name: production }, options);
    throw new Unexpected(`${production} exists: expected NOT_FOUND for a partner that never saved it`);
  } catch (e) {
    if (e instanceof Unexpected) throw e;
    const error = ConnectError.from(e);
    show("GetContacts (never saved)", { code: Code[error.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase() });
    if (error.code !== Code.NotFound) throw new Unexpected(`expected NOT_FOUND, got ${error.message}`);
  }
}

main().catch((e: unknown) => {
  console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
