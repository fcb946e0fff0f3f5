#!/usr/bin/env node
// The Node.js baseline for scripts/bench: the control API's checks written plainly in
// Node (no dependencies), to compare against the Rust binaries under the same load.
//
//   node node-baseline.js serve    HTTP on 127.0.0.1:$PORT (dry-run dispatch, like `control-api serve`)
//   node node-baseline.js bench    the handler alone, in process (per-call percentiles)
//   node node-baseline.js lambda   a minimal Lambda runtime loop on $AWS_LAMBDA_RUNTIME_API
//                                  (Function URL events; dispatches to $GITHUB_API_URL)
//
// Same checks as the Rust handler: POST only, 16 KiB limit, token from `Authorization:
// Bearer` or `x-clawdinator-token` compared with crypto.timingSafeEqual over SHA-256
// digests, JSON parse, field validation (target/ami/caller syntax), target against the
// 3-instance registry (nix/instances.json), the self-deploy / bot-deploy-all policy, a
// fresh request id, a JSON answer, and one JSON audit line per request on stderr.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const MAX_BODY = 16 * 1024;
const registryPath =
  process.env.FLEET_REGISTRY || path.join(__dirname, '..', '..', 'nix', 'instances.json');
const registry = JSON.parse(fs.readFileSync(registryPath, 'utf8'));
const hosts = new Map(Object.entries(registry).map(([id, e]) => [e.host, id]));
const tokenDigest = process.env.CONTROL_API_TOKEN
  ? crypto.createHash('sha256').update(process.env.CONTROL_API_TOKEN).digest()
  : null;
const github = {
  api: (process.env.GITHUB_API_URL || 'https://api.github.com').replace(/\/$/, ''),
  repo: process.env.GITHUB_REPO || 'openclaw/clawdinators',
  workflow: process.env.GITHUB_WORKFLOW || 'fleet-deploy.yml',
  ref: process.env.GITHUB_REF || 'main',
  token: process.env.GITHUB_TOKEN || '',
};
let audit = process.env.NODE_BASELINE_AUDIT !== '0';

const ID_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const AMI_RE = /^ami-[0-9a-f]{8}([0-9a-f]{9})?$/;
const CALLER_RE = /^[A-Za-z0-9][A-Za-z0-9:._@-]{0,127}$/;

class Refusal {
  constructor(status, error, message) {
    Object.assign(this, { status, error, message });
  }
}

function presentedToken(headers) {
  const auth = headers['authorization'];
  if (auth) {
    const sp = auth.indexOf(' ');
    if (sp > 0 && auth.slice(0, sp).toLowerCase() === 'bearer') {
      const t = auth.slice(sp + 1).trim();
      if (t) return t;
    }
  }
  const t = (headers['x-clawdinator-token'] || '').trim();
  return t || null;
}

function optionalString(obj, field) {
  const v = obj[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw new Refusal(400, 'invalid_field', `field "${field}" must be a string`);
  return v;
}

// Everything up to the dispatch: returns the checked deploy, or throws a Refusal.
function decide(method, headers, body) {
  if (method !== 'POST') throw new Refusal(405, 'method_not_allowed', 'only POST is accepted');
  if (body.length > MAX_BODY) throw new Refusal(413, 'payload_too_large', 'request body is larger than 16 KiB');
  if (!tokenDigest) throw new Refusal(500, 'misconfigured', 'server misconfigured: CONTROL_API_TOKEN is not set');
  const token = presentedToken(headers);
  const presented = crypto.createHash('sha256').update(token || '').digest();
  if (!token || !crypto.timingSafeEqual(presented, tokenDigest)) {
    throw new Refusal(401, 'unauthorized', 'missing or invalid token');
  }
  let obj;
  try {
    obj = JSON.parse(body.toString('utf8'));
  } catch {
    throw new Refusal(400, 'invalid_json', 'request body is not valid JSON');
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new Refusal(400, 'invalid_body', 'request body must be a JSON object');
  }
  const action = optionalString(obj, 'action');
  if (action === null) throw new Refusal(400, 'missing_action', 'field "action" is required');
  let caller = optionalString(obj, 'caller');
  if (caller === '') caller = null;
  if (caller !== null && !CALLER_RE.test(caller)) throw new Refusal(400, 'invalid_caller', 'caller is invalid');
  if (action.toLowerCase() !== 'deploy') {
    throw new Refusal(400, 'unknown_action', 'only deploy is implemented in the baseline');
  }
  const target = optionalString(obj, 'target');
  if (!target) throw new Refusal(400, 'missing_target', 'field "target" is required for deploy');
  if (target !== 'all' && !ID_RE.test(target)) throw new Refusal(400, 'invalid_target', 'target is invalid');
  if (target !== 'all' && !Object.prototype.hasOwnProperty.call(registry, target)) {
    throw new Refusal(404, 'unknown_target', `target "${target}" is not in the fleet registry`);
  }
  let ami = optionalString(obj, 'ami_override');
  if (ami === '') ami = null;
  if (ami !== null && !AMI_RE.test(ami)) throw new Refusal(400, 'invalid_ami', 'ami_override is invalid');
  const bot = caller === null ? null
    : Object.prototype.hasOwnProperty.call(registry, caller) ? caller : hosts.get(caller) || null;
  if (bot !== null && target === 'all') {
    throw new Refusal(403, 'bot_deploy_all', `${bot} is a fleet instance and may not deploy all`);
  }
  if (bot !== null && target === bot) throw new Refusal(403, 'self_deploy', `${bot} may not deploy itself`);
  return { target, ami, caller };
}

function dispatchGitHub(inputs) {
  const url = new URL(`${github.api}/repos/${github.repo}/actions/workflows/${github.workflow}/dispatches`);
  const payload = JSON.stringify({ ref: github.ref, inputs });
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${github.token}`,
        accept: 'application/vnd.github+json',
        'x-github-api-version': '2022-11-28',
        'user-agent': 'node-baseline',
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload),
      },
      timeout: 10000,
    }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 204 ? resolve() : reject(new Refusal(502, 'github_refused', `HTTP ${res.statusCode}`))));
    });
    req.on('error', () => reject(new Refusal(502, 'github_unavailable', 'GitHub could not be reached')));
    req.end(payload);
  });
}

// One request: { status, body } with a JSON body, and an audit line.
// dispatch: 'dry-run' (answer with the dispatch, as `control-api serve` without GITHUB_TOKEN),
// 'github' (POST the workflow dispatch), or 'noop' (the in-process bench: nothing).
async function handle(method, headers, body, dispatch) {
  const started = process.hrtime.bigint();
  const requestId = crypto.randomUUID();
  let status;
  let answer;
  let deploy = null;
  try {
    deploy = decide(method, headers, body);
    const inputs = { target: deploy.target, ami_override: deploy.ami || '', request_id: requestId };
    answer = {
      ok: true,
      message: `deploy queued for ${deploy.target}`,
      target: deploy.target,
      ami_override: deploy.ami,
      caller: deploy.caller,
      checks: { bootstrap: 'skipped' },
    };
    if (dispatch === 'dry-run') {
      answer.dispatch = { dry_run: true, repo: github.repo, workflow: github.workflow, ref: github.ref, inputs };
    } else if (dispatch === 'github') {
      await dispatchGitHub(inputs);
    }
    answer.request_id = requestId;
    status = 200;
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    status = e.status;
    answer = { ok: false, error: e.error, message: e.message, request_id: requestId };
  }
  if (audit) {
    auditSink(JSON.stringify({
      level: 'INFO', target: 'audit', message: 'request', request_id: requestId,
      caller: deploy && deploy.caller, action: 'deploy', decision: status === 200 ? 'accepted' : 'refused',
      status, latency_us: Number((process.hrtime.bigint() - started) / 1000n),
    }) + '\n');
  }
  return { status, body: JSON.stringify(answer) };
}

let auditSink = (line) => process.stderr.write(line);

function serve() {
  const port = Number(process.env.PORT || 8788);
  const server = http.createServer((req, res) => {
    const declared = Number(req.headers['content-length'] || 0);
    const chunks = [];
    let size = 0;
    let tooLarge = declared > MAX_BODY;
    const finish = async () => {
      const body = tooLarge ? Buffer.alloc(MAX_BODY + 1) : Buffer.concat(chunks);
      const reply = await handle(req.method, req.headers, body, 'dry-run');
      res.writeHead(reply.status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(reply.body);
    };
    if (tooLarge) {
      req.resume();
      finish();
      return;
    }
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) tooLarge = true;
      else chunks.push(c);
    });
    req.on('end', finish);
  });
  server.keepAliveTimeout = 60000;
  server.listen(port, '127.0.0.1', () => {
    process.stdout.write(`node-baseline listening on http://127.0.0.1:${server.address().port}\n`);
  });
}

// A minimal custom runtime, as a Node Lambda without the managed runtime would do it.
async function lambda() {
  const api = process.env.AWS_LAMBDA_RUNTIME_API;
  const base = api.startsWith('http') ? api.replace(/\/$/, '') : `http://${api}`;
  const agent = new http.Agent({ keepAlive: true });
  const call = (method, url, payload) => new Promise((resolve, reject) => {
    const headers = payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {};
    const req = http.request(url, { method, agent, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(payload);
  });
  for (;;) {
    const next = await call('GET', `${base}/2018-06-01/runtime/invocation/next`);
    const requestId = next.headers['lambda-runtime-aws-request-id'];
    const event = JSON.parse(next.body.toString('utf8'));
    const headers = {};
    for (const [k, v] of Object.entries(event.headers || {})) headers[k.toLowerCase()] = v;
    const body = Buffer.from(event.body || '', event.isBase64Encoded ? 'base64' : 'utf8');
    const method = (event.requestContext && event.requestContext.http && event.requestContext.http.method) || 'POST';
    const reply = await handle(method, headers, body, 'github');
    const response = JSON.stringify({
      statusCode: reply.status,
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
      body: reply.body,
      isBase64Encoded: false,
      cookies: [], // cargo-lambda's Function URL emulator requires the field
    });
    await call('POST', `${base}/2018-06-01/runtime/invocation/${requestId}/response`, response);
  }
}

// The in-process handler bench (the Node side of control-api/benches/handler.rs): each
// call timed on its own with hrtime, as the Rust percentile pass does.
async function bench() {
  const n = Number(process.env.BENCH_HANDLER_SAMPLES || 200000);
  const token = process.env.CONTROL_API_TOKEN;
  const deploy = Buffer.from('{"action":"deploy","target":"clawdinator-2","caller":"clawdinator-1","ami_override":""}');
  const self = Buffer.from('{"action":"deploy","target":"clawdinator-1","caller":"clawdinator-1","ami_override":""}');
  const cases = [
    ['deploy_accepted', { authorization: `Bearer ${token}` }, deploy, 200],
    ['refused_wrong_token', { authorization: 'Bearer not-the-token-0123456789abcdef00' }, deploy, 401],
    ['refused_policy_self_deploy', { authorization: `Bearer ${token}` }, self, 403],
  ];
  const rows = [];
  for (const [sink, fn] of [['no-log', null], ['json-sink', () => {}]]) {
    audit = fn !== null;
    if (fn) auditSink = fn;
    for (const [name, headers, body, status] of cases) {
      const first = await handle('POST', headers, body, 'noop');
      if (first.status !== status) throw new Error(`${name}: ${first.status} ${first.body}`);
      for (let i = 0; i < n / 10; i++) await handle('POST', headers, body, 'noop');
      const samples = new Float64Array(n);
      let len = 0;
      for (let i = 0; i < n; i++) {
        const t = process.hrtime.bigint();
        const r = await handle('POST', headers, body, 'noop');
        samples[i] = Number(process.hrtime.bigint() - t);
        len += r.body.length;
      }
      samples.sort();
      const mean = samples.reduce((a, b) => a + b, 0) / n;
      const at = (q) => samples[Math.min(n - 1, Math.floor(n * q))];
      rows.push({ case: name, subscriber: sink, n, mean_ns: mean, p50_ns: at(0.5), p99_ns: at(0.99), p999_ns: at(0.999), max_ns: samples[n - 1], bytes: len });
    }
  }
  process.stdout.write(JSON.stringify({ percentiles: rows }, null, 1) + '\n');
}

const mode = process.argv[2];
if (mode === 'serve') serve();
else if (mode === 'bench') bench().catch((e) => { console.error(e); process.exit(1); });
else if (mode === 'lambda') lambda().catch((e) => { console.error(e); process.exit(1); });
else {
  console.error('usage: node-baseline.js serve|lambda');
  process.exit(2);
}
