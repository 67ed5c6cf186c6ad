; Repository context for JavaScript (capture names: see aixaudit/context/outline.py).

(import_statement source: (string (string_fragment) @import.module))
(export_statement source: (string (string_fragment) @import.module))
((call_expression
   function: [(identifier) (import)] @_require
   arguments: (arguments . (string (string_fragment) @import.module)))
 (#match? @_require "^(require|import)$"))

(program (function_declaration name: (_) @definition.name body: (_) @definition.body) @definition)
(program (class_declaration name: (_) @definition.name body: (_) @definition.body) @definition)
(program (export_statement declaration: [
  (function_declaration name: (_) @definition.name body: (_) @definition.body)
  (class_declaration name: (_) @definition.name body: (_) @definition.body)]) @definition)
(program (lexical_declaration (variable_declarator
  name: (identifier) @definition.name value: (arrow_function body: (_) @definition.body))) @definition)
(program (export_statement declaration: (lexical_declaration (variable_declarator
  name: (identifier) @definition.name value: (arrow_function body: (_) @definition.body)))) @definition)
(class_body (method_definition name: (_) @definition.name body: (_) @definition.body) @definition)
