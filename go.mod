module aileron.dev/aileron

go 1.26
