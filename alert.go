package dtls

import "strconv"

// alert is a TLS alert description (RFC 5246 §7.2). It implements error;
// returning one from the handshake sends it to the peer.
type alert uint8

const (
	alertLevelWarning = 1
	alertLevelError   = 2
)

const (
	alertCloseNotify            alert = 0
	alertUnexpectedMessage      alert = 10
	alertBadRecordMAC           alert = 20
	alertRecordOverflow         alert = 22
	alertHandshakeFailure       alert = 40
	alertBadCertificate         alert = 42
	alertUnsupportedCertificate alert = 43
	alertCertificateRevoked     alert = 44
	alertCertificateExpired     alert = 45
	alertCertificateUnknown     alert = 46
	alertIllegalParameter       alert = 47
	alertUnknownCA              alert = 48
	alertAccessDenied           alert = 49
	alertDecodeError            alert = 50
	alertDecryptError           alert = 51
	alertTooManyCIDsRequested   alert = 52 // RFC 9147 §9
	alertProtocolVersion        alert = 70
	alertInsufficientSecurity   alert = 71
	alertInternalError          alert = 80
	alertInappropriateFallback  alert = 86
	alertUserCanceled           alert = 90
	alertNoRenegotiation        alert = 100
	alertMissingExtension       alert = 109 // RFC 8446 §6.2, DTLS 1.3
	alertUnsupportedExtension   alert = 110
	alertUnrecognizedName       alert = 112
	alertUnknownPSKIdentity     alert = 115
	alertNoApplicationProtocol  alert = 120
	alertCertificateRequired    alert = 116 // RFC 8446 §6.2, DTLS 1.3
)

var alertText = map[alert]string{
	alertCloseNotify:            "close notify",
	alertUnexpectedMessage:      "unexpected message",
	alertBadRecordMAC:           "bad record MAC",
	alertRecordOverflow:         "record overflow",
	alertHandshakeFailure:       "handshake failure",
	alertBadCertificate:         "bad certificate",
	alertUnsupportedCertificate: "unsupported certificate",
	alertCertificateRevoked:     "revoked certificate",
	alertCertificateExpired:     "expired certificate",
	alertCertificateUnknown:     "unknown certificate",
	alertIllegalParameter:       "illegal parameter",
	alertUnknownCA:              "unknown certificate authority",
	alertAccessDenied:           "access denied",
	alertDecodeError:            "error decoding message",
	alertDecryptError:           "error decrypting message",
	alertTooManyCIDsRequested:   "too many CIDs requested",
	alertProtocolVersion:        "protocol version not supported",
	alertInsufficientSecurity:   "insufficient security level",
	alertInternalError:          "internal error",
	alertInappropriateFallback:  "inappropriate fallback",
	alertUserCanceled:           "user canceled",
	alertNoRenegotiation:        "no renegotiation",
	alertMissingExtension:       "missing extension",
	alertUnsupportedExtension:   "unsupported extension",
	alertUnrecognizedName:       "unrecognized name",
	alertUnknownPSKIdentity:     "unknown PSK identity",
	alertNoApplicationProtocol:  "no application protocol",
	alertCertificateRequired:    "certificate required",
}

func (e alert) String() string {
	if s, ok := alertText[e]; ok {
		return s
	}
	return "alert(" + strconv.Itoa(int(e)) + ")"
}

func (e alert) Error() string { return "dtls: " + e.String() }

// AlertError is returned when the peer sends a fatal alert. Its value is the
// alert description (RFC 5246 §7.2).
type AlertError uint8

func (e AlertError) Error() string { return "dtls: peer sent alert: " + alert(e).String() }
