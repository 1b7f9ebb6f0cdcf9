module vouch

go 1.26.8

require (
	blitiri.com.ar/go/spf v1.6.0 // indirect
	github.com/BurntSushi/toml v1.6.0 // indirect
	github.com/d--j/go-milter v0.10.2 // indirect
	github.com/emersion/go-message v0.18.2 // indirect
	github.com/emersion/go-msgauth v0.7.0 // indirect
	github.com/miekg/dns v1.1.73 // indirect
	golang.org/x/crypto v0.54.0 // indirect
	golang.org/x/net v0.57.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	golang.org/x/text v0.40.0 // indirect
)
