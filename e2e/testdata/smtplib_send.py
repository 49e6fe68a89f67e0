#!/usr/bin/env python3
"""Send one message with Python's smtplib, the way an application would.

Driven by smtpgate's end-to-end tests (e2e/python_test.go). Prints one JSON
object on stdout describing what happened, so the Go test makes the
assertions:

  {"result": "ok", "refused": {}}
  {"result": "error", "type": "SMTPAuthenticationError", "code": 535, "message": "..."}

Exit status is 0 whenever the SMTP conversation ran (even if the server said
no) and non-zero only when the script itself could not run.
"""

import argparse
import json
import smtplib
import ssl
import sys
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid


def build_message(args):
    msg = EmailMessage(policy=SMTP)
    msg["From"] = args.sender
    msg["To"] = ", ".join(args.to)
    msg["Subject"] = args.subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain="python.e2e.test")
    msg.set_content(args.body + "\n")
    return msg


def send(args):
    ctx = ssl.create_default_context(cafile=args.cafile)
    msg = build_message(args)
    if args.mode == "ssl":
        client = smtplib.SMTP_SSL(args.host, args.port, context=ctx, timeout=args.timeout)
    else:
        client = smtplib.SMTP(args.host, args.port, timeout=args.timeout)
    with client as s:
        s.ehlo("python.e2e.test")
        if args.mode == "starttls":
            s.starttls(context=ctx)
            s.ehlo("python.e2e.test")
        s.login(args.user, args.password)
        refused = s.sendmail(args.sender, args.to, msg.as_bytes())
    return {"result": "ok", "refused": {k: list(v) for k, v in refused.items()}}


def describe(err):
    out = {"result": "error", "type": type(err).__name__, "message": str(err)}
    code = getattr(err, "smtp_code", None)
    if code is None and isinstance(err, smtplib.SMTPRecipientsRefused):
        codes = [c for c, _ in err.recipients.values()]
        code = codes[0] if codes else None
    if code is not None:
        out["code"] = code
    msg = getattr(err, "smtp_error", None)
    if isinstance(msg, bytes):
        out["message"] = msg.decode("utf-8", "replace")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", choices=["starttls", "ssl"], required=True)
    p.add_argument("--cafile", required=True, help="PEM certificate to trust")
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--from", dest="sender", required=True)
    p.add_argument("--to", action="append", required=True)
    p.add_argument("--subject", required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--timeout", type=float, default=15)
    args = p.parse_args()
    try:
        out = send(args)
    except smtplib.SMTPException as err:
        out = describe(err)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
