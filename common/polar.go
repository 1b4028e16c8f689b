package common

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrPolar reports a --lnd.polar node that can't be found.
var ErrPolar = errors.New("polar node not found")

// PolarNode is where one lnd node of a Polar network keeps its files, and
// where it listens.
type PolarNode struct {
	// NetworkID and Name are what --lnd.polar named.
	NetworkID int
	Name      string

	// Host is the gRPC host:port from Polar's networks.json; empty when
	// that file doesn't describe the node.
	Host string

	// TLSCertPath and AdminMacaroonPath are lnd's files on the host.
	TLSCertPath       string
	AdminMacaroonPath string
}

// PolarDir is Polar's data directory, found the way Polar finds it:
// ~/.local/share/polar if that exists, else ~/.polar.
func PolarDir() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("%w: no home directory: %v", ErrPolar, err)
	}
	xdg := filepath.Join(home, ".local", "share", "polar")
	if _, err := os.Stat(xdg); err == nil {
		return xdg, nil
	}
	return filepath.Join(home, ".polar"), nil
}

// polarNetworksFile is the part of Polar's <polar>/networks/networks.json
// we read (Polar's NetworksFile, src/types/index.ts; LndNode,
// src/shared/types.ts).
type polarNetworksFile struct {
	Networks []struct {
		ID    int `json:"id"`
		Nodes struct {
			Lightning []struct {
				Name           string `json:"name"`
				Implementation string `json:"implementation"`
				Ports          struct {
					GRPC int `json:"grpc"`
				} `json:"ports"`
				Paths struct {
					TLSCert       string `json:"tlsCert"`
					AdminMacaroon string `json:"adminMacaroon"`
				} `json:"paths"`
			} `json:"lightning"`
		} `json:"nodes"`
	} `json:"networks"`
}

// FindPolarNode resolves "<network id>/<node name>" (as --lnd.polar takes
// it) to the node's files and gRPC port. Polar's networks.json is the
// authority, because Polar moves ports when the defaults are taken; if it
// is missing, the files are found at Polar's usual place and Host is left
// empty for the caller to ask for.
func FindPolarNode(spec string) (*PolarNode, error) {
	idStr, name, ok := strings.Cut(strings.TrimSpace(spec), "/")
	id, err := strconv.Atoi(idStr)
	if !ok || err != nil || id < 1 || name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("%w: %q is not <network id>/<node name>, "+
			"e.g. 1/alice", ErrPolar, spec)
	}
	dir, err := PolarDir()
	if err != nil {
		return nil, err
	}
	networks := filepath.Join(dir, "networks")
	netDir := filepath.Join(networks, idStr)
	if _, err := os.Stat(netDir); err != nil {
		return nil, fmt.Errorf("%w: no Polar network %d in %s "+
			"(found: %s)", ErrPolar, id, networks, listDirs(networks))
	}
	node := &PolarNode{
		NetworkID: id,
		Name:      name,
		TLSCertPath: filepath.Join(netDir, "volumes", "lnd", name,
			"tls.cert"),
		AdminMacaroonPath: filepath.Join(netDir, "volumes", "lnd", name,
			"data", "chain", "bitcoin", "regtest", "admin.macaroon"),
	}

	data, err := os.ReadFile(filepath.Join(networks, "networks.json"))
	if err != nil {
		// An old or partly copied Polar tree: fall back to the layout.
		if _, err := os.Stat(filepath.Dir(node.TLSCertPath)); err != nil {
			return nil, fmt.Errorf("%w: no lnd node %q in Polar "+
				"network %d (found: %s)", ErrPolar, name, id,
				listDirs(filepath.Join(netDir, "volumes", "lnd")))
		}
		return node, nil
	}
	return polarNodeFromJSON(data, filepath.Join(networks,
		"networks.json"), node)
}

// polarNodeFromJSON completes node (whose NetworkID and Name are set)
// from the contents of Polar's networks.json, read from file.
func polarNodeFromJSON(data []byte, file string, node *PolarNode) (
	*PolarNode, error) {

	id, name := node.NetworkID, node.Name
	var nets polarNetworksFile
	if err := json.Unmarshal(data, &nets); err != nil {
		return nil, fmt.Errorf("%w: read %s: %v", ErrPolar, file, err)
	}
	for _, n := range nets.Networks {
		if n.ID != id {
			continue
		}
		var names []string
		for _, ln := range n.Nodes.Lightning {
			names = append(names, ln.Name)
			if ln.Name != name {
				continue
			}
			// litd runs lnd inside and lists lnd's files the same way.
			if ln.Implementation != "LND" && ln.Implementation != "litd" {
				return nil, fmt.Errorf("%w: Polar node %q is %s; "+
					"satstream needs an LND (or litd) node",
					ErrPolar, name, ln.Implementation)
			}
			if ln.Paths.TLSCert != "" {
				node.TLSCertPath = ln.Paths.TLSCert
			}
			if ln.Paths.AdminMacaroon != "" {
				node.AdminMacaroonPath = ln.Paths.AdminMacaroon
			}
			switch grpc := ln.Ports.GRPC; {
			case grpc < 0 || grpc > 65535:
				return nil, fmt.Errorf("%w: %s gives node %q "+
					"gRPC port %d, not 1..65535", ErrPolar,
					file, name, grpc)
			case grpc > 0:
				node.Host = net.JoinHostPort("127.0.0.1",
					strconv.Itoa(grpc))
			}
			return node, nil
		}
		return nil, fmt.Errorf("%w: no lightning node %q in Polar "+
			"network %d (found: %s)", ErrPolar, name, id,
			strings.Join(names, ", "))
	}
	return nil, fmt.Errorf("%w: Polar's networks.json has no network %d",
		ErrPolar, id)
}

// listDirs names the subdirectories of dir, for "found: ..." hints.
func listDirs(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "nothing"
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return "nothing"
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
