import Foundation
import IPVSAgent

/// `decode-bench DIR [REPS]`: decodes every manifest of DIR (as `ManifestSource` lists them) on one
/// thread, REPS times (default 5), and prints the CPU time of each pass with what it decoded. The
/// files are read once, before the first pass: only `ManifestDecoder.decode` is measured. Then it
/// maps what was decoded, as the agent's first build does, REPS times (CPU of every thread).
@main
struct DecodeBench {
    static func main() throws {
        let arguments = CommandLine.arguments.dropFirst()
        guard let folder = arguments.first, arguments.count <= 2 else {
            FileHandle.standardError.write(Data("usage: decode-bench DIR [REPS]\n".utf8))
            exit(2)
        }
        let reps = arguments.count == 2 ? Int(arguments.last!) ?? 5 : 5
        let source = ManifestSource(paths: [folder], logger: .init(label: "decode-bench"))
        let texts = try source.files().files.map { ($0, try String(contentsOfFile: $0, encoding: .utf8)) }
        var passes: [Double] = []
        for pass in 1...reps {
            var objects = 0, issues = 0
            let start = threadCPUSeconds()
            for (file, text) in texts {
                let decoding = ManifestDecoder.decode(text, file: file)
                objects += decoding.objects.count
                issues += decoding.issues.count
            }
            let seconds = threadCPUSeconds() - start
            passes.append(seconds)
            print("pass \(pass): \(String(format: "%.1f", seconds * 1000)) ms CPU, \(texts.count) files, \(objects) objects, \(issues) issues")
        }
        let median = passes.sorted()[passes.count / 2]
        print("median: \(String(format: "%.1f", median * 1000)) ms CPU")

        // Mapping what was decoded (every Service to its virtual services), as a first build does:
        // CPU of the whole process (the builder maps on every core).
        let objects = texts.flatMap { ManifestDecoder.decode($0.1, file: $0.0).objects }
        var maps: [Double] = []
        for pass in 1...reps {
            var builder = DesiredStateBuilder(options: MappingOptions())
            let start = processCPUSeconds()
            let build = builder.build(objects)
            let seconds = processCPUSeconds() - start
            maps.append(seconds)
            print("map pass \(pass): \(String(format: "%.1f", seconds * 1000)) ms CPU, \(build.state.services.count) virtual services")
        }
        print("map median: \(String(format: "%.1f", maps.sorted()[maps.count / 2] * 1000)) ms CPU")
    }

    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    static func threadCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
