// csi-double: a TEST DOUBLE of a CSI driver for the test environment's real nodes (no CSI driver
// that implements snapshots is served by the Go module proxy; see docs/testenv.md). It is the
// only double of the volume and snapshot path: the real external-provisioner and csi-snapshotter
// sidecars call its Controller service, the real kubelet its Node service.
//
// Volumes are directories VOLUMES/<id> on the real node, snapshots copies SNAPSHOTS/<id>. It
// serves, on unix sockets of the node:
//   - CSI Identity, Controller (CreateVolume, from nothing or from a snapshot, DeleteVolume,
//     CreateSnapshot, DeleteSnapshot, ListSnapshots) and Node (NodePublishVolume bind-mounts
//     the volume's directory; the node's hostname is the only topology) on -csi-socket;
//   - the kubelet's plugin registration API in -registration-dir (what node-driver-registrar,
//     which the Go module proxy refuses too, does elsewhere).
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

func listen(path string) net.Listener {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		log.Fatalf("removing the old socket %s: %v", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		log.Fatalf("listening on %s: %v", path, err)
	}
	return l
}

func main() {
	d := &driver{}
	var socket, regDir string
	flag.StringVar(&d.name, "driver", "", "the CSI driver name")
	flag.StringVar(&d.node, "node", "", "the real node's name (its kubernetes.io/hostname, the volumes' topology)")
	flag.StringVar(&d.volumes, "volumes", "", "directory of the volumes")
	flag.StringVar(&d.snapshots, "snapshots", "", "directory of the snapshots")
	flag.StringVar(&socket, "csi-socket", "", "unix socket of the CSI services")
	flag.StringVar(&regDir, "registration-dir", "", "the kubelet's plugins_registry directory")
	flag.Parse()
	if d.name == "" || d.node == "" || d.volumes == "" || d.snapshots == "" || socket == "" || regDir == "" {
		log.Fatal("all of -driver -node -volumes -snapshots -csi-socket -registration-dir are required")
	}
	for _, dir := range []string{d.volumes, d.snapshots, regDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			log.Fatal(err)
		}
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(logCalls))
	csi.RegisterIdentityServer(srv, &identity{d: d})
	csi.RegisterControllerServer(srv, &controller{d: d})
	csi.RegisterNodeServer(srv, &node{d: d})
	go func() { log.Fatal(srv.Serve(listen(socket))) }()

	reg := grpc.NewServer()
	registerapi.RegisterRegistrationServer(reg, &registration{name: d.name, endpoint: socket})
	go func() { log.Fatal(reg.Serve(listen(filepath.Join(regDir, d.name+"-reg.sock")))) }()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Printf("csi-double (TEST DOUBLE) %s serving on %s for node %s", d.name, socket, d.node)
	<-ctx.Done()
	srv.Stop()
	reg.Stop()
}

func logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	if err != nil {
		log.Printf("%s: %v", info.FullMethod, err)
	} else {
		log.Printf("%s: ok", info.FullMethod)
	}
	return resp, err
}

// registration answers the kubelet's plugin watcher for the socket in plugins_registry.
type registration struct {
	name, endpoint string
}

func (r *registration) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{Type: registerapi.CSIPlugin, Name: r.name, Endpoint: r.endpoint,
		SupportedVersions: []string{"1.0.0"}}, nil
}

func (r *registration) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if !s.PluginRegistered {
		log.Printf("the kubelet refused the registration: %s", s.Error)
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}
