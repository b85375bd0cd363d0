package dtls

// Helpers for tests that run once per protocol version, now that DTLS 1.3
// is the default and tests of 1.2 behaviour pin MaxVersion.

// versionName names a version for subtest names.
func versionName(vers uint16) string {
	switch vers {
	case VersionDTLS12:
		return "1.2"
	case VersionDTLS13:
		return "1.3"
	}
	return "unknown"
}

// pin12 sets MaxVersion to DTLS 1.2 on each config and returns the first:
// for tests of what only 1.2 has (HelloVerifyRequest, renegotiation,
// session IDs, 1.2 record formats, recorded 1.2 handshakes).
func pin12(cfgs ...*Config) *Config {
	for _, c := range cfgs {
		c.MaxVersion = VersionDTLS12
	}
	return cfgs[0]
}
