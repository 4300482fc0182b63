#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import IPVSControl

exit(IPVSControl.run(Array(CommandLine.arguments.dropFirst())))
