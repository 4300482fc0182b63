import Foundation
import IPVSAgent

/// `decode-bench DIR [REPS]`: decodes every manifest of DIR (as `ManifestSource` lists them) on one
/// thread, REPS times (default 5), and prints the CPU time of each pass with what it decoded. The
/// files are read once, before the first pass: only `ManifestDecoder.decode` is measured.
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
    }

    static func threadCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
