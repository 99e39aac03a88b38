module example.com/kiln/go-http

go 1.19
