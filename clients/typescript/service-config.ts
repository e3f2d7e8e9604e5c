// clients/service-config.json for Connect-ES clients.
//
// grpc-go, grpc-java, grpcio (Python) and @grpc/grpc-js read a gRPC service
// config themselves; Connect-ES does not. This interceptor applies the same
// file to a Connect transport:
//   - `timeout` per method, bounding all attempts together; as in gRPC, a
//     call's own shorter timeout (`timeoutMs` in the call options or the
//     transport's `defaultTimeoutMs`) wins;
//   - `retryPolicy` for unary methods: another attempt after a status listed
//     in `retryableStatusCodes`, at most `maxAttempts` (capped at 5, as gRPC
//     does), after a random pause of up to `initialBackoff`, growing by
//     `backoffMultiplier` up to `maxBackoff`;
//   - `retryThrottling`: a token bucket per interceptor, as gRPC keeps per
//     channel: retries stop while failures outweigh successes.
// A streaming call (WatchContacts) is never retried here: resubscribe, as
// the proto says.
//
//   const config = JSON.parse(readFileSync("service-config.json", "utf8"));
//   const transport = createGrpcTransport({
//     baseUrl: "https://partner-contacts.example:443",
//     interceptors: [serviceConfigInterceptor(config)],
//   });
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** The parts of a gRPC service config this file applies. */
export interface ServiceConfig {
  methodConfig?: MethodConfig[];
  retryThrottling?: { maxTokens: number; tokenRatio: number };
}

export interface MethodConfig {
  name: { service?: string; method?: string }[];
  /** A protobuf JSON Duration, e.g. "8s" or "0.5s". */
  timeout?: string;
  retryPolicy?: RetryPolicy;
}

export interface RetryPolicy {
  maxAttempts: number;
  initialBackoff: string;
  maxBackoff: string;
  backoffMultiplier: number;
  /** gRPC code names, e.g. "UNAVAILABLE". */
  retryableStatusCodes: string[];
}

/**
 * The method config that applies to `service`/`method`, as gRPC picks it:
 * the one naming the method, else the service's, else the default one.
 */
export function methodConfig(
  config: ServiceConfig,
  service: string,
  method: string,
): MethodConfig | undefined {
  const all = config.methodConfig ?? [];
  const find = (matches: (n: { service?: string; method?: string }) => boolean) =>
    all.find((mc) => mc.name.some(matches));
  return (
    find((n) => n.service === service && n.method === method) ??
    find((n) => n.service === service && !n.method) ??
    find((n) => !n.service && !n.method)
  );
}

/** Milliseconds of a protobuf JSON Duration ("8s", "0.5s"). */
export function millis(duration: string): number {
  const m = /^(\d+(?:\.\d+)?)s$/.exec(duration);
  if (!m) throw new Error(`not a protobuf JSON duration: ${duration}`);
  return Math.round(Number(m[1]) * 1000);
}

/** The Connect code of a gRPC code name ("DEADLINE_EXCEEDED" -> Code.DeadlineExceeded). */
export function codeOf(name: string): Code {
  const pascal = name.toLowerCase().replace(/(?:^|_)([a-z])/g, (_, c: string) => c.toUpperCase());
  const code = (Code as unknown as Record<string, Code | undefined>)[pascal];
  if (code === undefined) throw new Error(`unknown gRPC status code ${name}`);
  return code;
}

export function serviceConfigInterceptor(config: ServiceConfig): Interceptor {
  const throttling = config.retryThrottling;
  let tokens = throttling?.maxTokens ?? 0;
  const succeeded = () => {
    if (throttling) tokens = Math.min(throttling.maxTokens, tokens + throttling.tokenRatio);
  };
  const failed = () => {
    if (throttling) tokens = Math.max(0, tokens - 1);
  };
  const throttled = () => throttling !== undefined && tokens <= throttling.maxTokens / 2;

  return (next) => async (req) => {
    const mc = methodConfig(config, req.service.typeName, req.method.name);
    let signal = req.signal;
    let deadline: AbortSignal | undefined;
    const own = grpcTimeoutMillis(req.header.get("grpc-timeout"));
    if (mc?.timeout !== undefined && (own === undefined || millis(mc.timeout) < own)) {
      const ms = millis(mc.timeout);
      deadline = AbortSignal.timeout(ms);
      signal = AbortSignal.any([req.signal, deadline]);
      req.header.set("grpc-timeout", `${ms}m`);
    }
    const policy = req.stream ? undefined : mc?.retryPolicy;
    const retryable = new Set((policy?.retryableStatusCodes ?? []).map(codeOf));
    const maxAttempts = Math.min(policy?.maxAttempts ?? 1, 5);
    let backoff = policy ? millis(policy.initialBackoff) : 0;
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await next({ ...req, signal });
        succeeded();
        return res;
      } catch (e) {
        if (deadline?.aborted) {
          throw new ConnectError(`deadline of ${mc?.timeout} exceeded`, Code.DeadlineExceeded);
        }
        const error = ConnectError.from(e);
        if (!retryable.has(error.code)) throw error;
        failed();
        if (!policy || attempt >= maxAttempts || throttled() || signal.aborted) throw error;
        await pause(Math.random() * backoff, signal);
        backoff = Math.min(backoff * policy.backoffMultiplier, millis(policy.maxBackoff));
      }
    }
  };
}

/** Milliseconds of a grpc-timeout header ("8000m", "8S"), if any. */
function grpcTimeoutMillis(header: string | null): number | undefined {
  const m = header === null ? null : /^(\d{1,8})([HMSmun])$/.exec(header);
  if (!m) return undefined;
  const units: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };
  return Number(m[1]) * (units[m[2]] ?? 1);
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}
