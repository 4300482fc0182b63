import IPVSAgent

/// The `ipvs-agent` executable: everything lives in the IPVSAgent library.
@main
enum IPVSAgentMain {
    static func main() async {
        await AgentCommand.main()
    }
}
