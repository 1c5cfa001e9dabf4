'use strict';
// Starts, for qanat's S3 tests, on loopback and free ports:
//   - s3rver, with its data in DIR and bucket BUCKET;
//   - a checking proxy in front of it: every request's SigV4 signature is
//     recomputed with aws4 (sigv4-check.js) and its payload hash checked
//     against the body; a mismatch is answered like S3 does (403
//     SignatureDoesNotMatch, 400 XAmzContentSHA256Mismatch), otherwise
//     the request goes on to s3rver.  Each request is logged as one JSON
//     line in LOG.  (s3rver 3.7 itself does not verify V4 signatures.)
// Part 2 of a multipart upload of a key containing "inject-500" fails
// with 500 InternalError (to test aborts).
// Prints {"s3rver": PORT, "proxy": PORT} on one line when ready; stops
// when stdin closes or on SIGTERM.
// Usage: node server.js DIR BUCKET LOG ACCESS_KEY:SECRET
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const S3rver = require('s3rver');
const { check } = require('./sigv4-check');

const [dir, bucket, logPath, keyPair] = process.argv.slice(2);
if (!dir || !bucket || !logPath || !keyPair || !keyPair.includes(':')) {
  console.error('usage: node server.js DIR BUCKET LOG ACCESS_KEY:SECRET');
  process.exit(2);
}
const secrets = { [keyPair.slice(0, keyPair.indexOf(':'))]: keyPair.slice(keyPair.indexOf(':') + 1) };
const BODY_MAX = 256 * 1024 * 1024;
const log = fs.openSync(logPath, 'a');

function s3Error(res, status, code, message) {
  const body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>' + code +
    '</Code><Message>' + message + '</Message></Error>';
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

async function main() {
  const s3rver = new S3rver({
    address: '127.0.0.1', port: 0, directory: dir, silent: true,
    configureBuckets: [{ name: bucket, configs: [] }],
  });
  const { port: upstream } = await s3rver.run();

  const proxy = http.createServer((req, res) => {
    const chunks = [];
    let size = 0;
    const hash = crypto.createHash('sha256');
    req.on('data', chunk => {
      size += chunk.length;
      hash.update(chunk);
      if (size <= BODY_MAX) chunks.push(chunk);
    });
    req.on('end', () => {
      const bodySha256 = hash.digest('hex');
      const accessKey = ((req.headers.authorization || '').match(/Credential=([^/]+)\//) || [])[1];
      const secret = secrets[accessKey];
      const result = secret !== undefined
        ? check({ method: req.method, url: req.url, headers: req.headers, secret, body_sha256: bodySha256 })
        : { ok: false, reason: 'unknown access key' };
      fs.writeSync(log, JSON.stringify({
        method: req.method, url: req.url, headers: req.headers, body_sha256: bodySha256,
        body_size: size, ok: result.ok, reason: result.reason,
        provided: result.provided, expected: result.expected,
      }) + '\n');
      if (size > BODY_MAX) return s3Error(res, 400, 'EntityTooLarge', 'test proxy limit');
      // Fault injection for the abort path: part 2 of any key containing
      // "inject-500" fails
      if (/inject-500/.test(req.url) && /[?&]partNumber=2(&|$)/.test(req.url))
        return s3Error(res, 500, 'InternalError', 'injected failure');
      if (!result.ok) {
        if (result.reason === 'unknown access key')
          return s3Error(res, 403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.');
        if (result.reason.startsWith('x-amz-content-sha256'))
          return s3Error(res, 400, 'XAmzContentSHA256Mismatch', 'The provided x-amz-content-sha256 header does not match what was computed.');
        return s3Error(res, 403, 'SignatureDoesNotMatch',
          'The request signature we calculated does not match the signature you provided. Check your key and signing method. (' + result.reason + ')');
      }
      const headers = Object.assign({}, req.headers, { 'content-length': String(size) });
      delete headers.expect;
      delete headers['transfer-encoding'];
      const forward = http.request({
        host: '127.0.0.1', port: upstream, method: req.method, path: req.url, headers,
      }, upstreamRes => {
        res.writeHead(upstreamRes.statusCode, upstreamRes.headers);
        upstreamRes.pipe(res);
      });
      forward.on('error', e => s3Error(res, 502, 'BadGateway', String(e.message)));
      forward.end(Buffer.concat(chunks));
    });
  });
  await new Promise(resolve => proxy.listen(0, '127.0.0.1', resolve));
  process.stdout.write(JSON.stringify({ s3rver: upstream, proxy: proxy.address().port }) + '\n');

  const stop = () => { proxy.close(); s3rver.close(() => process.exit(0)); setTimeout(() => process.exit(0), 2000).unref(); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.resume();
}

main().catch(e => { console.error(e && e.stack || e); process.exit(1); });
