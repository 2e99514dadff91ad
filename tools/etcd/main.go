// Command etcd runs the etcd server from go.etcd.io/etcd/server/v3, the release kube-apiserver v1.37 is built against.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
