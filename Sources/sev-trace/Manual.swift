import ArgumentParser
import Foundation
import TraceFormat

/// `sev-trace manual`: the manual page (man(7) format), generated from the command definitions
/// themselves, so it cannot fall behind them: `sev-trace manual > sev-trace.1; man ./sev-trace.1`.
struct Manual: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the manual page (man format), generated from the commands' own definitions.",
        discussion: "Install it with: sev-trace manual > /usr/local/share/man/man1/sev-trace.1")

    func run() throws {
        Console.write(Self.page())
    }

    /// The whole page: the tool's synopsis, then a section per command with its help.
    static func page() -> String {
        var out = ".TH SEV-TRACE 1 \"\" \"sev-trace \(ToolVersion.current)\" \"User Commands\"\n"
        out += ".SH NAME\nsev-trace \\- \(escape(SevTrace.configuration.abstract))\n"
        out += ".SH SYNOPSIS\n.B sev-trace\n.I command\n[options]\n"
        out += ".SH DESCRIPTION\n" + paragraph(SevTrace.helpMessage(columns: 100))
        out += ".SH COMMANDS\n"
        for command in SevTrace.configuration.subcommands {
            let name = command.configuration.commandName ?? command._commandName
            out += ".SS \(escape(name))\n" + paragraph(SevTrace.helpMessage(for: command, columns: 100))
        }
        out += ".SH EXIT STATUS\n0 on success; 1 when a check fails (a finding at --fail-on, a damaged trace, a replay that diverged, a launch that does not verify); 2 for bad usage or input, with one line on standard error beginning error:.\n"
        out += ".SH SEE ALSO\nTraces/README.md (the scenario language), Queries/README.md (the index and its SQL), README.md.\n"
        return out
    }

    /// Help text kept as it is laid out (no filling), with roff's control characters escaped.
    static func paragraph(_ text: String) -> String {
        ".nf\n" + text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            let l = escape(String(line))
            return l.hasPrefix(".") || l.hasPrefix("'") ? "\\&" + l : l
        }.joined(separator: "\n") + "\n.fi\n"
    }

    /// A backslash as roff's `\e`, and every character outside ASCII as its `\[uXXXX]` escape (groff reads
    /// its input as Latin-1).
    static func escape(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            if u == "\\" {
                out += "\\e"
            } else if u.value < 0x80 {
                out.unicodeScalars.append(u)
            } else {
                let hex = String(u.value, radix: 16, uppercase: true)
                out += "\\[u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex + "]"
            }
        }
        return out
    }
}
