import IPVS
import XCTest
@testable import IPVSControl

final class InvocationParserTests: XCTestCase {
    private func parse(_ line: String) throws -> Invocation {
        try InvocationParser.parse(line.split(separator: " ").map(String.init))
    }

    private func error(_ line: String) -> String {
        do {
            _ = try parse(line)
            return "accepted"
        } catch let error as UsageError {
            return error.message
        } catch {
            return "\(error)"
        }
    }

    private let web = ServiceKey.address(.tcp, IPAddress("10.0.0.1")!, port: 80)

    // MARK: - Listing

    func testListingCommandsAndCombinedShortOptions() throws {
        XCTAssertEqual(try InvocationParser.parse([]), .list(.all, [], .text))
        XCTAssertEqual(try parse("-L"), .list(.all, [], .text))
        XCTAssertEqual(try parse("-Ln"), .list(.all, [.numeric], .text))
        XCTAssertEqual(try parse("-l -n"), .list(.all, [.numeric], .text))
        XCTAssertEqual(try parse("--list --numeric --stats --exact"), .list(.all, [.numeric, .stats, .exact], .text))
        XCTAssertEqual(try parse("-n -L"), .list(.all, [.numeric], .text), "the command may follow other options")
        XCTAssertEqual(try parse("-Lnt 10.0.0.1:80"), .list(.service(web), [.numeric], .text))
        XCTAssertEqual(try parse("-Lnt10.0.0.1:80"), .list(.service(web), [.numeric], .text))
        XCTAssertEqual(try parse("-L --tcp-service=10.0.0.1:80"), .list(.service(web), [], .text))
        XCTAssertEqual(try parse("-Lnc"), .list(.connections, [.numeric], .text))
        XCTAssertEqual(try parse("-L --timeout"), .list(.timeouts, [], .text))
        XCTAssertEqual(try parse("-L --daemon"), .list(.daemons, [], .text))
        XCTAssertEqual(try parse("-L --sort --nosort"), .list(.all, [.noSort], .text))
        XCTAssertEqual(try parse("-L -f 7 -6"), .list(.service(.firewallMark(7, family: .inet6)), [], .text))
        XCTAssertEqual(try parse("-L --output json"), .list(.all, [], .json))
        XCTAssertEqual(try parse("-L --output=json -c"), .list(.connections, [], .json))
        XCTAssertEqual(try parse("-Sn"), .save(numeric: true))
        XCTAssertEqual(try parse("-h"), .help(full: false))
        XCTAssertEqual(try parse("--help"), .help(full: true))
        XCTAssertEqual(try parse("-L -h"), .help(full: false))
        XCTAssertEqual(try parse("-v"), .version)
    }

    func testListingConflictsAreRejected() {
        XCTAssertEqual(error("-Lnp"), "-p (--persistent) cannot be used with -L (--list)")
        XCTAssertTrue(error("-L -c --stats").contains("--stats"))
        XCTAssertTrue(error("-L --timeout --persistent-conn").contains("--persistent-conn"))
        XCTAssertTrue(error("-L -c --timeout").contains("conflicts"))
        XCTAssertTrue(error("-L -t 10.0.0.1:80 -t 10.0.0.1:80").contains("more than once"))
        XCTAssertTrue(error("-L -S").contains("more than one command"))
        XCTAssertTrue(error("-L --output yaml").contains("text or json"))
        XCTAssertTrue(error("-A -t 10.0.0.1:80 --output json").contains("--output applies to listings"))
        XCTAssertTrue(error("-L extra").contains("unexpected argument \"extra\""))
        XCTAssertTrue(error("-L --foo").contains("unknown option --foo"))
        XCTAssertTrue(error("-Lq").contains("unknown option -q"))
        XCTAssertTrue(error("-L -t").contains("needs a value"))
        XCTAssertTrue(error("-S --stats").contains("cannot be used with -S"))
    }

    // MARK: - Services

    func testAddServiceWithEveryOption() throws {
        XCTAssertEqual(try parse("-A -t 10.0.0.1:80"), .change(.addService(VirtualService(key: web, scheduler: "wlc"))))
        XCTAssertEqual(try parse("-A -t 10.0.0.1:http -s rr"), .change(.addService(VirtualService(key: web, scheduler: "rr"))))
        XCTAssertEqual(try parse("-A -t 10.0.0.1:80 -p"),
                       .change(.addService(VirtualService(key: web, persistence: Persistence(timeout: 360)))))
        XCTAssertEqual(try parse("-A -t 10.0.0.1:80 -p 60 -M 255.255.255.0 --pe sip"),
                       .change(.addService(VirtualService(key: web, persistence: Persistence(timeout: 60, prefixLength: 24), persistenceEngine: "sip"))))
        XCTAssertEqual(try parse("-A -t 10.0.0.1:80 -p60 -s rr"),
                       .change(.addService(VirtualService(key: web, scheduler: "rr", persistence: Persistence(timeout: 60)))))
        XCTAssertEqual(try parse("-A -t 10.0.0.1:80 -p -s rr"),
                       .change(.addService(VirtualService(key: web, scheduler: "rr", persistence: Persistence(timeout: 360)))),
                       "-p takes no value when the next word is an option")
        let v6 = ServiceKey.address(.tcp, IPAddress("fd00::1")!, port: 443)
        XCTAssertEqual(try parse("-A -t [fd00::1]:443 -s mh -b mh-port,mh-fallback -p 10 -M 64"),
                       .change(.addService(VirtualService(key: v6, scheduler: "mh", flags: [.mhPort, .mhFallback], persistence: Persistence(timeout: 10, prefixLength: 64)))))
        XCTAssertEqual(try parse("-A -u 10.0.0.1:53 -o"),
                       .change(.addService(VirtualService(key: .address(.udp, IPAddress("10.0.0.1")!, port: 53), flags: [.onePacket]))))
        XCTAssertEqual(try parse("-A -f 7 -6 -s sh -b sh-port"),
                       .change(.addService(VirtualService(key: .firewallMark(7, family: .inet6), scheduler: "sh", flags: [.shPort]))))
        XCTAssertEqual(try parse("-A -f -1294967296 -s rr"),
                       .change(.addService(VirtualService(key: .firewallMark(3_000_000_000, family: .inet), scheduler: "rr"))),
                       "ipvsadm 1.31 saves marks above 2^31 as negative numbers")
        XCTAssertEqual(try parse("-A --sctp-service 10.0.0.1:3868"),
                       .change(.addService(VirtualService(key: .address(.sctp, IPAddress("10.0.0.1")!, port: 3868)))))
        XCTAssertEqual(try parse("-E -t 10.0.0.1:80 -s rr"), .change(.updateService(VirtualService(key: web, scheduler: "rr"))))
        XCTAssertEqual(try parse("-D -t 10.0.0.1:80"), .change(.deleteService(web)))
        XCTAssertEqual(try parse("-Z"), .change(.zero(nil)))
        XCTAssertEqual(try parse("-Z -t 10.0.0.1:80"), .change(.zero(web)))
        XCTAssertEqual(try parse("-C"), .change(.flush))
        XCTAssertEqual(try parse("--set 10 20 30"), .setTimeouts(Timeouts(tcp: 10, tcpFin: 20, udp: 30)))
    }

    func testMalformedServicesAreRejectedWithTheReason() {
        XCTAssertEqual(error("-A -t 10.0.0.1"), "-t: port 0 (any port) is allowed only for persistent services; add -p or give a port")
        XCTAssertTrue(error("-A -t 300.0.0.1:80").contains("\"300.0.0.1\" is neither an IP address"))
        XCTAssertTrue(error("-A -t 10.0.0.1:99999").contains("\"99999\" is neither a port"))
        XCTAssertTrue(error("-A -t 10.0.0.1:nosuchservice").contains("nosuchservice"))
        XCTAssertTrue(error("-A -t [fd00::1]80").contains("not a valid virtual service"))
        XCTAssertTrue(error("-A -t [10.0.0.1]:80").contains("not an IPv6 address"))
        XCTAssertTrue(error("-A -t 80").contains("not a valid virtual service"))
        XCTAssertTrue(error("-A -u 10.0.0.1:53 -s").contains("needs a value"))
        XCTAssertTrue(error("-A -t 10.0.0.1:80 -o").contains("only for UDP"))
        XCTAssertTrue(error("-A -t 10.0.0.1:80 -p 0").contains("persistence timeout (seconds) must be an integer 1..2678400"))
        XCTAssertTrue(error("-A -t 10.0.0.1:80 -p 2678401").contains("1..2678400"))
        XCTAssertTrue(error("-A -t 10.0.0.1:80 -p 5 -M 255.0.255.0").contains("not a contiguous netmask"))
        XCTAssertTrue(error("-A -t [fd00::1]:80 -p 5 -M 129").contains("1..128"))
        XCTAssertTrue(error("-A -t 10.0.0.1:80 -b sh-port").contains("applies to the sh scheduler"))
        XCTAssertTrue(error("-A -t 10.0.0.1:80 -s sh -b bogus").contains("unknown flag \"bogus\""))
        XCTAssertTrue(error("-A -t 10.0.0.1:80 -s 'rr'").contains("not a scheduler name"))
        XCTAssertTrue(error("-A -t 10.0.0.1:80 -s averyveryverylongname").contains("at most 15"))
        XCTAssertTrue(error("-A -f 0").contains("firewall mark must be"))
        XCTAssertTrue(error("-A -f x").contains("firewall mark must be"))
        XCTAssertTrue(error("-A -t 10.0.0.1:80 -6").contains("-6 (--ipv6) applies to firewall-mark services"))
        XCTAssertTrue(error("-A -t 10.0.0.1:80 -r 10.0.0.2").contains("cannot be used with -A"))
        XCTAssertTrue(error("-A").contains("needs a virtual service"))
        XCTAssertTrue(error("-D -t 10.0.0.1:80 -s rr").contains("-s (--scheduler) cannot be used with -D"))
        XCTAssertTrue(error("--set 1 2").contains("three timeouts"))
        XCTAssertTrue(error("--set 1 2 x").contains("udp timeout"))
        XCTAssertTrue(error("--start-daemon master").contains("sync daemons"))
    }

    // MARK: - Real servers

    func testRealServersFollowIpvsadmDefaults() throws {
        let ip = IPAddress("10.1.0.5")!
        // Direct routing (the default) and tunnelling use the service port.
        XCTAssertEqual(try parse("-a -t 10.0.0.1:80 -r 10.1.0.5:8080"),
                       .change(.addRealServer(RealServer(address: ip, port: 80, forwarding: .directRouting), service: web)))
        XCTAssertEqual(try parse("-a -t 10.0.0.1:80 -r 10.1.0.5:8080 -m -w 0 -x 10 -y 5"),
                       .change(.addRealServer(RealServer(address: ip, port: 8080, forwarding: .masquerade, weight: 0, upperThreshold: 10, lowerThreshold: 5), service: web)))
        XCTAssertEqual(try parse("-a -t 10.0.0.1:80 -r 10.1.0.5 -m"),
                       .change(.addRealServer(RealServer(address: ip, port: 80, forwarding: .masquerade), service: web)))
        XCTAssertEqual(try parse("-a -r 10.1.0.5 -m -t 10.0.0.1:80"),
                       .change(.addRealServer(RealServer(address: ip, port: 80, forwarding: .masquerade), service: web)),
                       "-r before -t still takes the service port")
        XCTAssertEqual(try parse("-a -t 10.0.0.1:80 -r 10.1.0.5 -i --tun-type gue --tun-port 6080 --tun-csum"),
                       .change(.addRealServer(RealServer(address: ip, port: 80, forwarding: .tunnel, tunnel: Tunnel(type: .gue, port: 6080, flags: [.checksum])), service: web)))
        XCTAssertEqual(try parse("-a -t [fd00::1]:80 -r 10.1.0.5 -i"),
                       .change(.addRealServer(RealServer(address: ip, port: 80, forwarding: .tunnel), service: .address(.tcp, IPAddress("fd00::1")!, port: 80))))
        XCTAssertEqual(try parse("-a -f 7 -r 10.1.0.5:8080 -g"),
                       .change(.addRealServer(RealServer(address: ip, port: 8080, forwarding: .directRouting), service: .firewallMark(7, family: .inet))))
        XCTAssertEqual(try parse("-e -t 10.0.0.1:80 -r 10.1.0.5 -m -w 3"),
                       .change(.updateRealServer(RealServer(address: ip, port: 80, forwarding: .masquerade, weight: 3), service: web)))
        XCTAssertEqual(try parse("-d -t 10.0.0.1:80 -r 10.1.0.5:8080"),
                       .change(.deleteRealServer(RealServerID(address: ip, port: 8080), service: web)))
    }

    func testMalformedRealServersAreRejected() {
        XCTAssertEqual(error("-a -t 10.0.0.1:80 -r 10.1.0.5 -w x"), "-w: weight must be an integer 0..65535, got \"x\"")
        XCTAssertTrue(error("-a -t 10.0.0.1:80 -r 10.1.0.5 -w 65536").contains("0..65535"))
        XCTAssertTrue(error("-a -t 10.0.0.1:80 -r 10.1.0.5 -x -1").contains("upper threshold"))
        XCTAssertTrue(error("-a -t 10.0.0.1:80").contains("needs -r"))
        XCTAssertTrue(error("-a -t 10.0.0.1:80 -r bogus..name").contains("neither an IP address"))
        XCTAssertTrue(error("-a -t 10.0.0.1:80 -r 10.1.0.5 -m -g").contains("given more than once"))
        XCTAssertTrue(error("-a -t [fd00::1]:80 -r 10.1.0.5 -m").contains("needs tunnelling"))
        XCTAssertTrue(error("-a -t 10.0.0.1:80 -r 10.1.0.5 --tun-type gre").contains("add -i"))
        XCTAssertTrue(error("-a -t 10.0.0.1:80 -r 10.1.0.5 -i --tun-type gue").contains("needs --tun-port"))
        XCTAssertTrue(error("-a -t 10.0.0.1:80 -r 10.1.0.5 -i --tun-type gre --tun-remcsum").contains("gue tunnel type only"))
        XCTAssertTrue(error("-a -t 10.0.0.1:80 -r 10.1.0.5 -i --tun-port 5").contains("ipip"))
        XCTAssertTrue(error("-a -t 10.0.0.1:80 -r 10.1.0.5 -i --tun-type gue --tun-port 5 --tun-csum --tun-nocsum").contains("conflicts"))
        XCTAssertTrue(error("-a -t 10.0.0.1:80 -r 10.1.0.5 -i --tun-type vxlan").contains("ipip, gue or gre"))
        XCTAssertTrue(error("-d -t 10.0.0.1:80 -r 10.1.0.5 -w 2").contains("cannot be used with -d"))
    }
}
