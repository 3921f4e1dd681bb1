module aileron.dev/aileron

go 1.26.0

require (
	github.com/landlock-lsm/go-landlock v0.11.2
	github.com/stretchr/testify v1.12.1
	golang.org/x/sys v0.50.0
	kernel.org/pub/linux/libs/security/libcap/psx v1.2.78
)

require go.yaml.in/yaml/v3 v3.0.5 // indirect
