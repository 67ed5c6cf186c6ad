; Repository context for C++ (capture names: see aixaudit/context/outline.py).

(preproc_include path: (_) @import.module)

(function_definition
  declarator: (function_declarator declarator: (_) @definition.name)
  body: (compound_statement) @definition.body) @definition
(declaration
  declarator: (function_declarator declarator: (_) @definition.name)) @definition
(field_declaration
  declarator: (function_declarator declarator: (_) @definition.name)) @definition
(class_specifier name: (_) @definition.name body: (field_declaration_list) @definition.body) @definition
(struct_specifier name: (_) @definition.name body: (field_declaration_list) @definition.body) @definition
