// The Go peer of the footprint suite: net/http/httputil.ReverseProxy adding the token, the engine of
// cloud-run-proxy, runsd and aws-sigv4-proxy. Built by the bench with Debian's `go` and run with
// GOMAXPROCS=1 (one core, as the Node process's one event loop).
//
// Env: PORT (loopback), UPSTREAM_URL, TOKEN.
package main

import (
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

func main() {
	upstream, err := url.Parse(os.Getenv("UPSTREAM_URL"))
	if err != nil {
		log.Fatal(err)
	}
	authorization := "Bearer " + os.Getenv("TOKEN")
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 128
	// Director, not Rewrite: Debian's go 1.19 predates Rewrite (1.20).
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	direct := proxy.Director
	proxy.Director = func(r *http.Request) {
		direct(r)
		r.Host = upstream.Host
		r.Header.Set("Authorization", authorization)
	}
	proxy.Transport = transport
	log.Fatal(http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), proxy))
}
