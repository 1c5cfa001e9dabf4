'use strict';
// Recomputes the SigV4 Authorization header of an HTTP request with aws4,
// an implementation independent of libcurl's, for qanat's S3 tests.
//
// As a module: check(request) -> { ok, reason, expected, provided }.
// As a command: reads one JSON request from stdin and prints the JSON
// result:  {"method": "PUT", "url": "/bucket/key?x=y",
//           "headers": {"host": ..., "x-amz-date": ..., ...},
//           "secret": "...", "body_sha256": "<hex>" (optional)}
// The headers signed are exactly those the request's SignedHeaders names,
// with the values it carried, so the check compares the canonical request
// libcurl built with the one aws4 builds from the same bytes.
const aws4 = require('aws4');

const AUTH_RE = /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]+)\/([^/,\s]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

function check(request) {
  const headers = request.headers || {};
  const provided = headers.authorization;
  if (typeof provided !== 'string') return { ok: false, reason: 'no Authorization header' };
  const m = AUTH_RE.exec(provided);
  if (!m) return { ok: false, reason: 'malformed Authorization header', provided };
  const [, accessKeyId, date, region, service, signedList] = m;
  const signed = signedList.split(';');
  // What a real S3 insists on having signed
  for (const name of ['host', 'x-amz-date', 'x-amz-content-sha256'])
    if (!signed.includes(name)) return { ok: false, reason: name + ' not signed', provided };
  if ('x-amz-security-token' in headers && !signed.includes('x-amz-security-token'))
    return { ok: false, reason: 'x-amz-security-token not signed', provided };
  if (!String(headers['x-amz-date'] || '').startsWith(date))
    return { ok: false, reason: 'credential date differs from x-amz-date', provided };
  const chosen = {};
  const include = {};
  for (const name of signed) {
    if (!(name in headers)) return { ok: false, reason: 'signed header missing: ' + name, provided };
    chosen[name] = headers[name];
    include[name] = true;
  }
  const payload = headers['x-amz-content-sha256'];
  if (request.body_sha256 !== undefined && payload !== 'UNSIGNED-PAYLOAD' && payload !== request.body_sha256)
    return { ok: false, reason: 'x-amz-content-sha256 is not the SHA-256 of the body', provided };
  let signedRequest;
  try {
    signedRequest = aws4.sign({
      method: request.method, host: headers.host, path: request.url, service, region,
      headers: chosen, extraHeadersToInclude: include,
    }, { accessKeyId, secretAccessKey: request.secret });
  } catch (e) {
    return { ok: false, reason: 'cannot sign: ' + e.message, provided };
  }
  const expected = signedRequest.headers.Authorization;
  return { ok: expected === provided, reason: expected === provided ? '' : 'signature differs', expected, provided };
}

module.exports = { check };

if (require.main === module) {
  let input = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', chunk => { input += chunk; });
  process.stdin.on('end', () => {
    const result = check(JSON.parse(input));
    process.stdout.write(JSON.stringify(result) + '\n');
    process.exit(result.ok ? 0 : 1);
  });
}
