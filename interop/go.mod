module github.com/dtls-go/dtls/interop

go 1.26.0

replace github.com/dtls-go/dtls => ../

require github.com/dtls-go/dtls v0.0.0-00010101000000-000000000000

require (
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
