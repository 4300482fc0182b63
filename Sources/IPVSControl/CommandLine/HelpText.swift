import IPVS

/// `ipvsctl -h` (the compact usage ipvsadm users know) and `ipvsctl --help` (the same, then
/// examples, the JSON output, `-R` and the exit statuses).
enum HelpText {
    static let usage = """
    \(IPVSControl.version)
    Usage:
      ipvsctl -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]
      ipvsctl -D virtual-service
      ipvsctl -C
      ipvsctl -R
      ipvsctl -S [-n]
      ipvsctl -a|e virtual-service -r server-address [options]
      ipvsctl -d virtual-service -r server-address
      ipvsctl -L|l [virtual-service] [options] [--output text|json]
      ipvsctl -Z [virtual-service]
      ipvsctl --set tcp tcpfin udp
      ipvsctl status [--agent-address HOST:PORT] [--service SERVICE] [--output text|json]
      ipvsctl -h | --help | --generate-completion-script bash|zsh|fish

    Commands:
    Either long or short options are allowed.
      --add-service     -A        add virtual service with options
      --edit-service    -E        edit virtual service with options
      --delete-service  -D        delete virtual service
      --clear           -C        clear the whole table
      --restore         -R        restore rules from stdin (all of them or none)
      --save            -S        save rules to stdout
      --add-server      -a        add real server with options
      --edit-server     -e        edit real server with options
      --delete-server   -d        delete real server
      --list            -L|-l     list the table
      --zero            -Z        zero counters in a service or all services
      --set tcp tcpfin udp        set connection timeout values (0 keeps a value)
      --help            -h        display help (--help adds examples)

    virtual-service:
      --tcp-service|-t  service-address   service-address is host[:port], [ipv6]:port
      --udp-service|-u  service-address   service-address is host[:port], [ipv6]:port
      --sctp-service    service-address   service-address is host[:port], [ipv6]:port
      --fwmark-service|-f fwmark          fwmark is an integer greater than zero

    Options:
      --ipv6         -6                   fwmark entry uses IPv6
      --scheduler    -s scheduler         one of \(Scheduler.allKnown.map(\.rawValue).joined(separator: "|")),
                                          the default scheduler is wlc.
      --pe            engine              alternate persistence engine may be sip,
                                          not set by default.
      --persistent   -p [timeout]         persistent service (default timeout 360 s)
      --netmask      -M netmask           persistent granularity mask (IPv6: prefix length)
      --real-server  -r server-address    server-address is host (and port)
      --gatewaying   -g                   gatewaying (direct routing) (default)
      --ipip         -i                   ipip encapsulation (tunneling)
      --masquerading -m                   masquerading (NAT)
      --tun-type      type                one of ipip|gue|gre,
                                          the default tunnel type is ipip.
      --tun-port      port                tunnel destination port
      --tun-nocsum                        tunnel encapsulation without checksum
      --tun-csum                          tunnel encapsulation with checksum
      --tun-remcsum                       tunnel encapsulation with remote checksum
      --weight       -w weight            capacity of real server (0..65535)
      --u-threshold  -x uthreshold        upper threshold of connections
      --l-threshold  -y lthreshold        lower threshold of connections
      --connection   -c                   output of current IPVS connections
      --timeout                           output of timeout (tcp tcpfin udp)
      --daemon                            output of daemon information
      --stats                             output of statistics information
      --rate                              output of rate information
      --exact        -X                   expand numbers (display exact values)
      --thresholds                        output of thresholds information
      --persistent-conn                   output of persistent connection info
      --tun-info                          output of tunnel information
      --nosort                            disable sorting output of service/server entries
      --sort                              does nothing, for backwards compatibility
      --ops          -o                   one-packet scheduling
      --numeric      -n                   numeric output of addresses and ports
      --sched-flags  -b flags             scheduler flags (comma-separated)
      --output        text|json           listing format (json: see ipvsctl --help)

    """

    static let full = usage + """

    Examples:
      # A web service on 10.0.0.1:80, round robin, two NAT backends of weight 1 and 3
      ipvsctl -A -t 10.0.0.1:80 -s rr
      ipvsctl -a -t 10.0.0.1:80 -r 192.168.1.10:8080 -m
      ipvsctl -a -t 10.0.0.1:80 -r 192.168.1.11:8080 -m -w 3

      # IPv6 service, sticky clients for 10 minutes per /64, maglev hashing with fallback
      ipvsctl -A -t [fd00::1]:443 -s mh -b mh-fallback -p 600 -M 64

      # Firewall-mark service (mark set by nftables/iptables), direct routing backends
      ipvsctl -A -f 7 -s wlc
      ipvsctl -a -f 7 -r 192.168.1.20 -g

      # GUE tunnel backend with checksums
      ipvsctl -a -t 10.0.0.1:80 -r 192.168.2.5 -i --tun-type gue --tun-port 6080 --tun-csum

      # Drain a backend (no new connections), then remove it
      ipvsctl -e -t 10.0.0.1:80 -r 192.168.1.10:8080 -m -w 0
      ipvsctl -d -t 10.0.0.1:80 -r 192.168.1.10:8080

      # List numerically; counters; one service; connections; everything as JSON
      ipvsctl -Ln
      ipvsctl -Ln --stats --exact
      ipvsctl -Ln -t 10.0.0.1:80
      ipvsctl -Lnc
      ipvsctl -L --output json | jq '.services[].real_servers[].stats.in_bytes'

      # Save and restore (the same format as ipvsadm -S / -R)
      ipvsctl -Sn > rules.txt
      ipvsctl -C && ipvsctl -R < rules.txt

      # What ipvs-agent's health checks decided (its /status; `ipvsctl status --help`)
      ipvsctl status --agent-address 127.0.0.1:10249 --service default/web

    Restore (-R):
      Reads one command per line (-A -E -D -a -e -d -C -Z --set), as -S prints them,
      and applies all of them or none:
      1. Every line is checked; each problem is printed with the line's number and text
         ("line 12 (-a -t 10.0.0.1:80 -r 10.1.0.5 -w x): -w: weight must be ...").
      2. The lines are walked over the kernel's table, read once: adding a service or real
         server that exists, or editing, deleting or zeroing one that does not, is printed
         the same way.
      After a problem in 1 or 2 nothing is applied. Then the commands are sent to the kernel
      in batches; if the kernel still refuses one (a scheduler or persistence engine it
      cannot load, an address it rejects), the table read in 2 is put back, after a -C too:
      services, real servers, their settings and the timeouts, as they were. Not put back:
      the counters of what the input deleted (-C, -D, -d) start again from zero, counters
      zeroed by -Z stay zero, and changes another program made meanwhile are overwritten.
      Blank lines are skipped, '#' starts a comment, a leading "ipvsadm" is ignored.

    JSON output (--output json, with -L, -L -t/-u/--sctp-service/-f, -L -c, --timeout, --daemon):
      -L:        {"version", "connection_table_size", "services": [service...]}
      service:   {"name", "family": "ipv4"|"ipv6", "protocol": "tcp"|"udp"|"sctp"|null,
                  "address", "port", "fwmark" (null unless a firewall-mark service),
                  "scheduler", "scheduler_flags": [..], "one_packet",
                  "persistence": {"timeout", "prefix_length"}|null, "persistence_engine",
                  "stats": {"connections", "in_packets", "out_packets", "in_bytes", "out_bytes"},
                  "rates": {"connections_per_second", "in_packets_per_second",
                            "out_packets_per_second", "in_bytes_per_second", "out_bytes_per_second"},
                  "real_servers": [{"address", "port", "forwarding": "masquerade"|"local"|"tunnel"|"route",
                                    "weight", "upper_threshold", "lower_threshold", "active_connections",
                                    "inactive_connections", "persistent_connections",
                                    "tunnel": {"type", "port", "checksum": "off"|"on"|"remote"}|null,
                                    "stats": {..}, "rates": {..}}]}
      -L -c:     {"connections": [{"protocol", "client_address", "client_port", "virtual_address",
                  "virtual_port", "destination_address", "destination_port", "state",
                  "expires_seconds", "persistence_engine", "persistence_data"}]}
      --timeout: {"tcp", "tcp_fin", "udp"}       --daemon: {"daemons": [{"role", "interface",
                  "sync_id", "max_length", "multicast_group", "multicast_port", "multicast_ttl"}]}
      Counters are exact 64-bit integers; addresses are always numeric; order as in the text listing.

    Exit status (as ipvsadm): 0 success; 1 a listing failed; 2 an invalid value or combination on
    the command line or in -R input (nothing changed), or IPVS unavailable; 255 an unknown option
    or an option missing its value (nothing changed), or the kernel refused a change (with -R:
    would refuse one, or refused one and the rest was undone, as the message says).

    """
}
