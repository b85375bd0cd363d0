module github.com/dtls-go/dtls/interop

go 1.26.0

replace github.com/dtls-go/dtls => ../

require (
	github.com/dtls-go/dtls v0.0.0-00010101000000-000000000000
	github.com/pion/dtls/v3 v3.1.15
	github.com/pion/dtls/v4 v4.0.1
	golang.org/x/net v0.62.0
)

require (
	github.com/pion/logging v0.2.4 // indirect
	github.com/pion/transport/v5 v5.1.4 // indirect
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
