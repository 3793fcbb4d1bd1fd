import ArgumentParser
import Foundation
import Query
import TraceFormat

struct Query: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the SQL in a file against a trace's index (read-only).",
        discussion: "Tables are documented in Queries/README.md. The events virtual table decodes events from events.zst on demand.")

    @Argument(help: "The trace bundle.")
    var bundle: String

    @Argument(help: "A file of SQL statements.")
    var sqlFile: String

    @Option(help: "Output format: table, csv or json.")
    var format: String = "table"

    func run() throws {
        guard let fmt = OutputFormat(rawValue: format) else {
            throw InputError(description: "unknown format '\(format)'; use table, csv or json")
        }
        guard let data = FileManager.default.contents(atPath: sqlFile), let sql = String(data: data, encoding: .utf8) else {
            throw InputError(description: "\(sqlFile): cannot read the SQL file")
        }
        let engine = try QueryEngine(bundle: try TraceBundle(existing: bundle))
        let results: [QueryResult]
        do {
            results = try engine.run(sql, file: sqlFile)
        } catch {
            throw QueryFailure(description: error.description)
        }
        for (i, r) in results.enumerated() {
            if i > 0 && fmt == .table { Console.write("\n") }
            Console.write(fmt.render(r))
        }
    }
}
