import Foundation

/// Small text files a user hands the tool (a scenario, an SQL file, a rule, a baseline), read with the
/// checks every input gets: a regular file, at most a named number of bytes, UTF-8.
public enum InputFile {
    /// Why the file could not be read, naming it.
    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    /// The text of the file at `path`, the `what` of the messages ("scenario", "SQL file"). Past `limit`
    /// bytes it is refused; `option` names the option that raises the limit, if one does.
    public static func text(_ path: String, what: String, limit: Int, option: String? = nil) throws(Problem) -> String {
        let data = try data(path, what: what, limit: limit, option: option)
        guard let text = String(data: data, encoding: .utf8) else {
            throw Problem(description: "\(path): the \(what) is not UTF-8 text")
        }
        return text
    }

    /// The bytes of the file at `path`, with the same checks as ``text(_:what:limit:option:)``.
    public static func data(_ path: String, what: String, limit: Int, option: String? = nil) throws(Problem) -> Data {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        guard let attributes, attributes[.type] as? FileAttributeType == .typeRegular else {
            throw Problem(description: "\(path): cannot read the \(what) (not a regular file)")
        }
        if let size = attributes[.size] as? NSNumber, size.intValue > limit {
            throw Problem(description: "\(path): the \(what) is \(size) bytes, over the limit of \(limit)"
                + (option.map { " (raise it with \($0))" } ?? ""))
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Problem(description: "\(path): cannot read the \(what)")
        }
        return data
    }
}
