; Repository context for C (capture names: see aixaudit/context/outline.py).

(preproc_include path: (_) @import.module)

(translation_unit (function_definition
  declarator: (function_declarator declarator: (_) @definition.name)
  body: (compound_statement) @definition.body) @definition)
(translation_unit (declaration
  declarator: (function_declarator declarator: (identifier) @definition.name)) @definition)
(translation_unit (struct_specifier name: (type_identifier) @definition.name) @definition)
(translation_unit (type_definition declarator: (type_identifier) @definition.name) @definition)
