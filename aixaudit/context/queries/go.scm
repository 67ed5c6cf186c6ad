; Repository context for Go (capture names: see aixaudit/context/outline.py).

(import_spec path: (_) @import.module)

(source_file (function_declaration name: (identifier) @definition.name body: (block) @definition.body) @definition)
(source_file (method_declaration name: (field_identifier) @definition.name body: (block) @definition.body) @definition)
(source_file (type_declaration (type_spec name: (type_identifier) @definition.name)) @definition)
