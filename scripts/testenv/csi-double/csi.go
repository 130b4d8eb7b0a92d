// The CSI services of the test double: Identity, Controller (snapshots) and Node (bind mounts).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

type driver struct {
	name, node, volumes, snapshots string
	mu                             sync.Mutex // one change of the directories at a time
}

// An id names a directory: nothing that could leave VOLUMES or SNAPSHOTS.
var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,100}$`)

func checkID(what, id string) error {
	if !idPattern.MatchString(id) {
		return status.Errorf(codes.InvalidArgument, "%s %q: not an id of this driver", what, id)
	}
	return nil
}

// copyTree copies src into a new dst, atomically (a temporary sibling renamed).
func copyTree(src, dst string) error {
	tmp := dst + ".tmp"
	os.RemoveAll(tmp)
	if out, err := exec.Command("cp", "-a", "--", src, tmp).CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("copying %s: %v: %s", src, err, strings.TrimSpace(string(out)))
	}
	return os.Rename(tmp, dst)
}

func treeBytes(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

type identity struct {
	csi.UnimplementedIdentityServer
	d *driver
}

func (s *identity) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: s.d.name, VendorVersion: "test-double"}, nil
}

func (s *identity) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	var caps []*csi.PluginCapability
	for _, t := range []csi.PluginCapability_Service_Type{
		csi.PluginCapability_Service_CONTROLLER_SERVICE,
		csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS,
	} {
		caps = append(caps, &csi.PluginCapability{Type: &csi.PluginCapability_Service_{
			Service: &csi.PluginCapability_Service{Type: t}}})
	}
	return &csi.GetPluginCapabilitiesResponse{Capabilities: caps}, nil
}

func (s *identity) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{}, nil
}

type controller struct {
	csi.UnimplementedControllerServer
	d *driver
}

func (s *controller) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, t := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{
			Rpc: &csi.ControllerServiceCapability_RPC{Type: t}}})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

// topology is where every volume is: the real node, by the label the kubelet gives it (a PV's
// nodeAffinity names it, as a local PV's does).
func (d *driver) topology() []*csi.Topology {
	return []*csi.Topology{{Segments: map[string]string{"kubernetes.io/hostname": d.node}}}
}

// volumeID is the id of the volume named name: the same name gives the same volume.
func volumeID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "vol-" + hex.EncodeToString(sum[:10])
}

func (s *controller) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "name: empty")
	}
	for _, c := range req.GetVolumeCapabilities() {
		if c.GetBlock() != nil {
			return nil, status.Error(codes.InvalidArgument, "volume_capabilities: block volumes are not supported")
		}
	}
	id := volumeID(req.GetName())
	dir := filepath.Join(s.d.volumes, id)
	src := req.GetVolumeContentSource()
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		switch {
		case src == nil:
			if err := os.Mkdir(dir, 0o777); err != nil {
				return nil, status.Error(codes.Internal, err.Error())
			}
			os.Chmod(dir, 0o777) // as local-path-provisioner's: a pod of any user may write
		case src.GetSnapshot() != nil:
			snap := src.GetSnapshot().GetSnapshotId()
			if err := checkID("volume_content_source.snapshot", snap); err != nil {
				return nil, err
			}
			if _, err := s.d.snapshot(snap); err != nil {
				return nil, status.Errorf(codes.NotFound, "snapshot %s: %v", snap, err)
			}
			if err := copyTree(filepath.Join(s.d.snapshots, snap), dir); err != nil {
				return nil, status.Error(codes.Internal, err.Error())
			}
		default:
			return nil, status.Error(codes.InvalidArgument, "volume_content_source: only snapshots are supported")
		}
	}
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{VolumeId: id, CapacityBytes: req.GetCapacityRange().GetRequiredBytes(),
		ContentSource: src, AccessibleTopology: s.d.topology()}}, nil
}

func (s *controller) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if err := checkID("volume", req.GetVolumeId()); err != nil {
		return nil, err
	}
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	if err := os.RemoveAll(filepath.Join(s.d.volumes, req.GetVolumeId())); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.DeleteVolumeResponse{}, nil
}

func (s *controller) ValidateVolumeCapabilities(_ context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if err := checkID("volume", req.GetVolumeId()); err != nil {
		return nil, err
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeCapabilities: req.GetVolumeCapabilities()}}, nil
}

// snapshotMeta is SNAPSHOTS/<id>.json, written once the copy is complete.
type snapshotMeta struct {
	Source  string    `json:"source"`
	Created time.Time `json:"created"`
	Bytes   int64     `json:"bytes"`
}

func (d *driver) snapshot(id string) (*csi.Snapshot, error) {
	raw, err := os.ReadFile(filepath.Join(d.snapshots, id+".json"))
	if err != nil {
		return nil, err
	}
	var m snapshotMeta
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	return &csi.Snapshot{SnapshotId: id, SourceVolumeId: m.Source, SizeBytes: m.Bytes,
		CreationTime: timestamppb.New(m.Created), ReadyToUse: true}, nil
}

func (s *controller) CreateSnapshot(_ context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "name: empty")
	}
	if err := checkID("source volume", req.GetSourceVolumeId()); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(req.GetName()))
	id := "snap-" + hex.EncodeToString(sum[:10])
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	if snap, err := s.d.snapshot(id); err == nil { // the same name again: idempotent
		if snap.SourceVolumeId != req.GetSourceVolumeId() {
			return nil, status.Errorf(codes.AlreadyExists, "snapshot %q exists of another volume", req.GetName())
		}
		return &csi.CreateSnapshotResponse{Snapshot: snap}, nil
	}
	src := filepath.Join(s.d.volumes, req.GetSourceVolumeId())
	if _, err := os.Stat(src); err != nil {
		return nil, status.Errorf(codes.NotFound, "volume %s: %v", req.GetSourceVolumeId(), err)
	}
	dst := filepath.Join(s.d.snapshots, id)
	if err := copyTree(src, dst); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	m, _ := json.Marshal(snapshotMeta{Source: req.GetSourceVolumeId(), Created: time.Now().UTC(), Bytes: treeBytes(dst)})
	if err := os.WriteFile(filepath.Join(s.d.snapshots, id+".json"), m, 0o600); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	snap, err := s.d.snapshot(id)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.CreateSnapshotResponse{Snapshot: snap}, nil
}

func (s *controller) DeleteSnapshot(_ context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	if err := checkID("snapshot", req.GetSnapshotId()); err != nil {
		return nil, err
	}
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	os.Remove(filepath.Join(s.d.snapshots, req.GetSnapshotId()+".json"))
	if err := os.RemoveAll(filepath.Join(s.d.snapshots, req.GetSnapshotId())); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

func (s *controller) ListSnapshots(_ context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	if req.GetStartingToken() != "" {
		return nil, status.Error(codes.Aborted, "starting_token: this driver does not page")
	}
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	metas, _ := filepath.Glob(filepath.Join(s.d.snapshots, "*.json"))
	resp := &csi.ListSnapshotsResponse{}
	for _, m := range metas {
		snap, err := s.d.snapshot(strings.TrimSuffix(filepath.Base(m), ".json"))
		if err != nil || (req.GetSnapshotId() != "" && snap.SnapshotId != req.GetSnapshotId()) ||
			(req.GetSourceVolumeId() != "" && snap.SourceVolumeId != req.GetSourceVolumeId()) {
			continue
		}
		resp.Entries = append(resp.Entries, &csi.ListSnapshotsResponse_Entry{Snapshot: snap})
	}
	return resp, nil
}

type node struct {
	csi.UnimplementedNodeServer
	d *driver
}

func (s *node) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{}, nil
}

func (s *node) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: s.d.node, AccessibleTopology: s.d.topology()[0]}, nil
}

func mounted(target string) bool {
	raw, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == target {
			return true
		}
	}
	return false
}

func (s *node) NodePublishVolume(_ context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	if err := checkID("volume", req.GetVolumeId()); err != nil {
		return nil, err
	}
	target := req.GetTargetPath()
	if !filepath.IsAbs(target) {
		return nil, status.Errorf(codes.InvalidArgument, "target_path %q: not absolute", target)
	}
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	if mounted(target) {
		return &csi.NodePublishVolumeResponse{}, nil
	}
	src := filepath.Join(s.d.volumes, req.GetVolumeId())
	if _, err := os.Stat(src); err != nil {
		return nil, status.Errorf(codes.NotFound, "volume %s: %v", req.GetVolumeId(), err)
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := syscall.Mount(src, target, "", syscall.MS_BIND, ""); err != nil {
		return nil, status.Errorf(codes.Internal, "bind mount %s: %v", target, err)
	}
	if req.GetReadonly() {
		if err := syscall.Mount("", target, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			syscall.Unmount(target, 0)
			return nil, status.Errorf(codes.Internal, "read-only remount %s: %v", target, err)
		}
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

func (s *node) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	target := req.GetTargetPath()
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	if mounted(target) {
		if err := syscall.Unmount(target, 0); err != nil {
			return nil, status.Errorf(codes.Internal, "unmount %s: %v", target, err)
		}
	}
	if err := os.Remove(target); err != nil && !os.IsNotExist(err) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}
