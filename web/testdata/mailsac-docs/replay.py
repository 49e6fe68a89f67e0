"""Replays the Python examples of Mailsac's documentation against smtpgate.

Each function makes the same `requests` calls as one example of
https://docs.mailsac.com (mailsac/mailsac-examples), with the base URL
https://mailsac.com/api replaced by the one given on the command line.
The results are printed as one JSON object for the Go test to check.

usage: python3 replay.py BASE_URL API_KEY   (compose: python3 replay.py compose)

Without requests installed (or with REPLAY_URLLIB=1) the same calls go
through a small urllib stand-in.
"""
import email.utils
import json
import os
import sys
from email.mime.text import MIMEText


def compose():
    """The message services/email_capture/email_capture_example.py sends."""
    msg = MIMEText('Click on the link to reset you password\r\n'
                   'https://mywebapp.com/password-reset/PasswordResetToken')
    msg['Subject'] = 'Password reset'
    msg['From'] = email.utils.formataddr(('Mywebapp Customer Support', 'no-reply@mywebapp.com'))
    msg['To'] = 'mycustomer@gmail.com'
    return msg.as_string()


class _Response:
    def __init__(self, status, body):
        self.status_code = status
        self.text = body.decode('utf-8')

    def json(self):
        return json.loads(self.text)


class _URLLibRequests:
    """The part of requests the examples use, over urllib, for machines
    without requests installed."""

    def _do(self, method, url, headers):
        import urllib.error
        import urllib.request
        req = urllib.request.Request(url, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req) as res:
                return _Response(res.status, res.read())
        except urllib.error.HTTPError as e:
            return _Response(e.code, e.read())

    def get(self, url, headers=None):
        return self._do('GET', url, headers or {})

    def delete(self, url, headers=None):
        return self._do('DELETE', url, headers or {})


def main(base, key):
    try:
        if os.environ.get('REPLAY_URLLIB'):
            raise ImportError('urllib requested')
        import requests
        client = 'requests ' + requests.__version__
    except ImportError:
        requests = _URLLibRequests()
        client = 'urllib'

    headers = {'Mailsac-Key': key}
    out = {'client': client}

    # services/email_capture/python_validation.py: validate email was received.
    r = requests.get(base + '/addresses/mycustomer@gmail.com/messages', headers=headers)
    out['validation'] = {'status': r.status_code, 'json': r.json()}

    # services/reading_mail/reading_mail.py: the first message's id, then its text.
    r = requests.get(base + '/addresses/mycustomer@gmail.com/messages', headers=headers)
    message_id = r.json()[0]['_id']
    r = requests.get(base + '/text/mycustomer@gmail.com/' + message_id, headers=headers)
    out['reading'] = {'status': r.status_code, 'text': r.text}

    # services/message_storage/delete_message.py: delete one message.
    r = requests.delete(base + '/addresses/mycustomer@gmail.com/messages/' + message_id, headers=headers)
    out['delete'] = {'status': r.status_code, 'json': r.json()}

    # services/message_storage/purge_inbox.py: delete all messages of an inbox.
    r = requests.delete(base + '/addresses/bclinton@mailsac.com/messages', headers=headers)
    out['purge'] = {'status': r.status_code}

    # api_examples/validate_receipt_smtp.py: check_received() for one address.
    r = requests.get('{0}/addresses/{1}/messages'.format(base, 'user1@mailsac.com'), headers=headers)
    received = None
    for message in r.json():
        if message['from'][0]['address'] == 'myuser@company.com':
            received = message['received']
    out['check_received'] = received

    print(json.dumps(out))


if __name__ == '__main__':
    if sys.argv[1:] == ['compose']:
        sys.stdout.write(compose())
    else:
        main(sys.argv[1].rstrip('/'), sys.argv[2])
