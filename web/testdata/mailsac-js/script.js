// Usage: node script.js <baseurl> <key> <address>
//
// Uses the official Mailsac client (@mailsac/api) against smtpgate: lists the
// inbox of <address>, reads the newest message (metadata, text, raw, headers,
// attachments), deletes it, and checks what a deleted message and a wrong
// key answer. Prints one JSON object on stdout for web.TestMailsacNPMClient.
'use strict';

const { Mailsac } = require('@mailsac/api');

function client(base, key) {
  return new Mailsac({
    baseURL: base.replace(/\/+$/, '') + '/api',
    headers: { 'Mailsac-Key': key },
    timeout: 10000,
  });
}

// failure returns {status, data} of a request that must fail.
async function failure(promise) {
  try {
    const res = await promise;
    return { status: res.status, data: res.data, unexpectedSuccess: true };
  } catch (err) {
    if (!err.response) throw err;
    return { status: err.response.status, data: err.response.data };
  }
}

async function main() {
  const [base, key, address] = process.argv.slice(2);
  if (!base || !key || !address) {
    throw new Error('usage: node script.js <baseurl> <key> <address>');
  }
  const mailsac = client(base, key);
  const out = {};

  const list = await mailsac.messages.listMessages(address);
  out.list = list.data;
  out.limited = (await mailsac.messages.listMessages(address, { limit: 1 })).data.map((m) => m._id);
  const id = list.data[0]._id;

  out.message = (await mailsac.messages.getMessageMetadata(address, id)).data;
  out.text = (await mailsac.messages.getBodyPlainText(address, id)).data;
  out.raw = (await mailsac.messages.getFullRawMessage(address, id)).data;
  out.headers = (await mailsac.messages.getHeaders(address, id, { messageHeadersFormat: 'json-ordered' })).data;
  out.attachments = (await mailsac.attachments.listMessageAttachments(address, id)).data;

  out.deleted = (await mailsac.messages.deleteMessage(address, id)).data;
  out.afterDelete = await failure(mailsac.messages.getMessageMetadata(address, id));
  out.listAfterDelete = (await mailsac.messages.listMessages(address)).data.map((m) => m._id);
  out.wrongKey = await failure(client(base, 'not-a-key').messages.listMessages(address));

  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  if (err && err.response) {
    console.error('HTTP', err.response.status, JSON.stringify(err.response.data));
  }
  process.exit(1);
});
