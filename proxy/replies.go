package proxy

import "github.com/emersion/go-smtp"

// The replies the proxy sends itself. Everything a Session method returns
// must be an *smtp.SMTPError: go-smtp sends any other error as "451 4.0.0"
// or "454 4.7.0" followed by the error's text, which would leak internals.
var (
	errTLSRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message: "Must issue a STARTTLS command first"}
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message: "Authentication required"}
	errAuthInvalid = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8},
		Message: "Authentication credentials invalid"}
	errAuthTemporary = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "Temporary authentication failure, try again later"}
	errAuthMalformed = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2},
		Message: "Malformed authentication response"}
	errAuthMechanism = &smtp.SMTPError{Code: 504, EnhancedCode: smtp.EnhancedCode{5, 5, 4},
		Message: "Unrecognized authentication mechanism"}
	errAuthTooMany = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "Too many authentication failures, closing connection"}
	errSenderNotAllowed = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "Sender address not allowed for this login"}
	errBadSender = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 7},
		Message: "Bad sender address syntax"}
	errBadRecipient = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3},
		Message: "Bad recipient address syntax"}
	errNeedsSMTPUTF8 = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7},
		Message: "Non-ASCII address requires SMTPUTF8"}
	errMessageTooLarge = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message: "Message size exceeds fixed maximum message size"}
	errTemporary = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Temporary failure, try again later"}
	errDataTimeout = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2},
		Message: "Timeout while receiving the message, closing connection"}
	errShuttingDown = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2},
		Message: "Service shutting down, try again later"}
	errTooManyMessages = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "Too many messages on this connection, reconnect to send more"}
	errAuthNotAvailable = &smtp.SMTPError{Code: 502, EnhancedCode: smtp.EnhancedCode{5, 5, 1},
		Message: "Authentication not available on this service"}
	errNoSuchUser = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
		Message: "No such user here"}
	errRelayDenied = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "Relay access denied"}
	errTooManyRefusals = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "Too many refused commands, closing connection"}
	errNoSession = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Internal error, closing connection"}
)

// Lines the proxy writes on the socket itself, outside go-smtp: before a
// connection is handed to go-smtp, and in the plaintext phase of a STARTTLS
// listener.
const (
	lineTooManyConns      = "421 4.7.0 Too many connections\r\n"
	lineTooManyConnsIP    = "421 4.7.0 Too many connections from your address\r\n"
	lineShuttingDown      = "421 4.3.2 Service shutting down, try again later\r\n"
	lineTLSRequired       = "530 5.7.0 Must issue a STARTTLS command first\r\n"
	linePlainTooManyErr   = "421 4.7.0 Too many commands before STARTTLS, closing connection\r\n"
	linePlainLineTooLong  = "500 5.5.2 Line too long, closing connection\r\n"
	linePlainBDATRejected = "530 5.7.0 Must issue a STARTTLS command first, closing connection\r\n"
)

// queuedReply is the 250 sent after a message the Handler accepted.
func queuedReply(id string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "queued as " + sanitizeID(id)}
}

// sanitizeID keeps a queue id from breaking the reply line: go-smtp turns a
// "\n" into a multi-line reply and a "\r" would end the line early.
func sanitizeID(id string) string {
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			b := []byte(id)
			for j := i; j < len(b); j++ {
				if b[j] < 0x21 || b[j] > 0x7e {
					b[j] = '?'
				}
			}
			return string(b)
		}
	}
	return id
}
