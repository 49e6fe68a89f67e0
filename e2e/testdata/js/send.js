// Send one message with nodemailer, the way a Node.js application would.
//
// Driven by smtpgate's end-to-end tests (e2e/nodemailer_test.go). The only
// argument is a JSON object:
//   {"host", "port", "secure", "requireTLS", "ca" (PEM file), "user", "pass",
//    "from", "to", "subject", "text", "html"}
// One JSON line is printed on stdout:
//   {"result":"ok","response":"250 2.0.0 queued as ...","accepted":[...]}
//   {"result":"error","code":"EAUTH","responseCode":535,"message":"..."}
// The exit status is 0 whenever the SMTP conversation ran.
'use strict';

const fs = require('node:fs');
const nodemailer = require('nodemailer');

async function main() {
  const opt = JSON.parse(process.argv[2]);
  const transport = nodemailer.createTransport({
    host: opt.host,
    port: opt.port,
    secure: opt.secure,
    requireTLS: opt.requireTLS,
    auth: { user: opt.user, pass: opt.pass },
    tls: { ca: [fs.readFileSync(opt.ca)] },
    name: 'nodemailer.e2e.test',
    connectionTimeout: 15000,
    greetingTimeout: 15000,
    socketTimeout: 15000,
  });
  let out;
  try {
    const info = await transport.sendMail({
      from: opt.from,
      to: opt.to,
      subject: opt.subject,
      text: opt.text,
      html: opt.html,
    });
    out = { result: 'ok', response: info.response, accepted: info.accepted, rejected: info.rejected };
  } catch (err) {
    out = { result: 'error', code: err.code, responseCode: err.responseCode, command: err.command, message: err.message };
  } finally {
    transport.close();
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n');
  process.exit(2);
});
