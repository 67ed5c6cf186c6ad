; Repository context for Python (capture names are fixed: see aixaudit/context/outline.py).
; @import.module: what an import names; @import.name: a name taken from it.
; @definition: a definition whose signature (and docstring) is shown to files importing it,
; @definition.name its name, @definition.body what the signature stops before.

(import_statement name: (dotted_name) @import.module)
(import_statement name: (aliased_import name: (dotted_name) @import.module))
(import_from_statement
  module_name: (_) @import.module
  name: [(dotted_name) @import.name (aliased_import name: (dotted_name) @import.name)])
(import_from_statement module_name: (_) @import.module (wildcard_import))

(module (function_definition name: (identifier) @definition.name body: (block) @definition.body) @definition)
(module (class_definition name: (identifier) @definition.name body: (block) @definition.body) @definition)
(module (decorated_definition
  definition: [(function_definition name: (identifier) @definition.name body: (block) @definition.body)
               (class_definition name: (identifier) @definition.name body: (block) @definition.body)]) @definition)
(class_definition body: (block
  (function_definition name: (identifier) @definition.name body: (block) @definition.body) @definition))
(class_definition body: (block (decorated_definition
  definition: (function_definition name: (identifier) @definition.name body: (block) @definition.body)) @definition))
