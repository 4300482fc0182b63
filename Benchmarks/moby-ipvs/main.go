// moby-ipvs-bench drives github.com/moby/ipvs, the Go library under kube-proxy's IPVS mode, the way
// kube-proxy does: one netlink request at a time, each waiting for its answer. It is the
// "one-request-at-a-time" peer of `make bench` (see docs/benchmarks.md).
//
// Usage:
//
//	moby-ipvs-bench restore RULES [--bind IFNAME]     add the services and real servers of RULES, one request each
//	moby-ipvs-bench kube-proxy RULES [--bind IFNAME]  the same with kube-proxy's reads around the writes
//	moby-ipvs-bench dump                              read every service and its real servers; print the counts
//
// With --bind, it also does what kube-proxy's IPVS mode does for each ClusterIP: create the dummy
// interface IFNAME once (kube-ipvs0), then bind each service address on it as a /32 with
// github.com/vishvananda/netlink, one RTM_NEWADDR request per address right after its service is
// added, as kube-proxy's syncService calls EnsureAddressBind. That is the same kernel work as
// ipvs-agent's cold sync, done one request at a time.
//
// RULES is the subset of `ipvsadm -S -n` that the benchmark generates:
//
//	-A -t 10.96.0.1:80 -s rr
//	-a -t 10.96.0.1:80 -r 10.244.0.1:8080 -m -w 1
//
// Built offline in GOPATH mode against Debian's golang-github-docker-docker-dev (Benchmarks/build.sh).
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/ipvs"
	"github.com/vishvananda/netlink"
)

// rule is one line of RULES: a service (-A) or a real server of a service (-a).
type rule struct {
	service     *ipvs.Service
	destination *ipvs.Destination
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	handle, err := ipvs.New("")
	if err != nil {
		fail("open an IPVS netlink handle: %v", err)
	}
	defer handle.Close()

	switch os.Args[1] {
	case "restore", "kube-proxy":
		var bind func(net.IP)
		switch {
		case len(os.Args) == 5 && os.Args[3] == "--bind":
			bind = binder(os.Args[4])
		case len(os.Args) != 3:
			usage()
		}
		rules := readRules(os.Args[2])
		if os.Args[1] == "restore" {
			restore(handle, rules, bind)
		} else {
			kubeProxy(handle, rules, bind)
		}
	case "dump":
		services, err := handle.GetServices()
		if err != nil {
			fail("list services: %v", err)
		}
		destinations := 0
		for _, service := range services {
			list, err := handle.GetDestinations(service)
			if err != nil {
				fail("list real servers of %s:%d: %v", service.Address, service.Port, err)
			}
			destinations += len(list)
		}
		fmt.Printf("%d services, %d real servers\n", len(services), destinations)
	default:
		usage()
	}
}

// binder creates the dummy interface name when it is missing, brings it up, and returns a function
// that binds one address on it as a /32 (one RTM_NEWADDR request, acknowledged before it returns).
// An address that is already bound (EEXIST) is fine, as in kube-proxy's EnsureAddressBind.
func binder(name string) func(net.IP) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		if err := netlink.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
			fail("create dummy interface %s: %v", name, err)
		}
		if link, err = netlink.LinkByName(name); err != nil {
			fail("find interface %s: %v", name, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		fail("bring %s up: %v", name, err)
	}
	return func(address net.IP) {
		err := netlink.AddrAdd(link, &netlink.Addr{IPNet: netlink.NewIPNet(address)})
		if err != nil && err != syscall.EEXIST {
			fail("bind %s on %s: %v", address, name, err)
		}
	}
}

// restore issues one NEW_SERVICE or NEW_DEST per rule, in order, each acknowledged before the next;
// with bind, each service's address is bound right after the service is added.
func restore(handle *ipvs.Handle, rules []rule, bind func(net.IP)) {
	for index, r := range rules {
		if r.destination == nil {
			if err := handle.NewService(r.service); err != nil {
				fail("line %d: add service %s:%d: %v", index+1, r.service.Address, r.service.Port, err)
			}
			if bind != nil {
				bind(r.service.Address)
			}
		} else if err := handle.NewDestination(r.service, r.destination); err != nil {
			fail("line %d: add real server %s:%d: %v", index+1, r.destination.Address, r.destination.Port, err)
		}
	}
}

// kubeProxy follows kube-proxy's syncService and syncEndpoint for each service: read the service,
// add it when missing, bind its address (with bind), read it again, read its real servers, add the
// missing ones.
func kubeProxy(handle *ipvs.Handle, rules []rule, bind func(net.IP)) {
	for start := 0; start < len(rules); {
		service := rules[start].service
		end := start + 1
		for end < len(rules) && rules[end].destination != nil {
			end++
		}
		if _, err := handle.GetService(service); err != nil {
			if err := handle.NewService(service); err != nil {
				fail("add service %s:%d: %v", service.Address, service.Port, err)
			}
		}
		if bind != nil {
			bind(service.Address)
		}
		applied, err := handle.GetService(service)
		if err != nil {
			fail("read service %s:%d: %v", service.Address, service.Port, err)
		}
		current, err := handle.GetDestinations(applied)
		if err != nil {
			fail("read real servers of %s:%d: %v", service.Address, service.Port, err)
		}
		present := map[string]bool{}
		for _, d := range current {
			present[net.JoinHostPort(d.Address.String(), strconv.Itoa(int(d.Port)))] = true
		}
		for _, r := range rules[start+1 : end] {
			if present[net.JoinHostPort(r.destination.Address.String(), strconv.Itoa(int(r.destination.Port)))] {
				continue
			}
			if err := handle.NewDestination(service, r.destination); err != nil {
				fail("add real server %s:%d: %v", r.destination.Address, r.destination.Port, err)
			}
		}
		start = end
	}
}

// Rules file

func readRules(path string) []rule {
	file, err := os.Open(path)
	if err != nil {
		fail("open %s: %v", path, err)
	}
	defer file.Close()
	var rules []rule
	services := map[string]*ipvs.Service{}
	scanner := bufio.NewScanner(file)
	for line := 1; scanner.Scan(); line++ {
		fields := strings.Fields(scanner.Text())
		if len(fields) == 0 {
			continue
		}
		options := map[string]string{}
		for i := 1; i < len(fields); i++ {
			if fields[i] == "-m" {
				options["-m"] = ""
				continue
			}
			if i+1 >= len(fields) {
				fail("%s:%d: %s needs a value", path, line, fields[i])
			}
			options[fields[i]] = fields[i+1]
			i++
		}
		protocol, key := uint16(syscall.IPPROTO_TCP), options["-t"]
		if key == "" {
			protocol, key = syscall.IPPROTO_UDP, options["-u"]
		}
		address, port := endpoint(path, line, key)
		switch fields[0] {
		case "-A":
			scheduler := options["-s"]
			if scheduler == "" {
				scheduler = "wlc"
			}
			service := &ipvs.Service{Address: address, Protocol: protocol, Port: port, SchedName: scheduler,
				Netmask: 0xFFFFFFFF, AddressFamily: syscall.AF_INET}
			services[key] = service
			rules = append(rules, rule{service: service})
		case "-a":
			service := services[key]
			if service == nil {
				fail("%s:%d: real server of unknown service %s", path, line, key)
			}
			realAddress, realPort := endpoint(path, line, options["-r"])
			weight := 1
			if w, ok := options["-w"]; ok {
				if weight, err = strconv.Atoi(w); err != nil {
					fail("%s:%d: bad weight %q", path, line, w)
				}
			}
			rules = append(rules, rule{service: service, destination: &ipvs.Destination{Address: realAddress, Port: realPort,
				Weight: weight, ConnectionFlags: ipvs.ConnectionFlagMasq, AddressFamily: syscall.AF_INET}})
		default:
			fail("%s:%d: only -A and -a lines are supported, not %q", path, line, fields[0])
		}
	}
	if err := scanner.Err(); err != nil {
		fail("read %s: %v", path, err)
	}
	return rules
}

func endpoint(path string, line int, text string) (net.IP, uint16) {
	host, portText, err := net.SplitHostPort(text)
	address := net.ParseIP(host).To4()
	port, perr := strconv.ParseUint(portText, 10, 16)
	if err != nil || address == nil || perr != nil {
		fail("%s:%d: %q is not an IPv4 address:port", path, line, text)
	}
	return address, uint16(port)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: moby-ipvs-bench restore RULES [--bind IFNAME] | kube-proxy RULES [--bind IFNAME] | dump")
	os.Exit(2)
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "moby-ipvs-bench: "+format+"\n", args...)
	os.Exit(1)
}
