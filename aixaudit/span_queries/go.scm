; Span query for Go (capture names are fixed: see aixaudit/spans.py).
; Bodies are the whole `{...}` block; its statements sit in a statement_list node.
; Conditions are the expression itself (Go has no parentheses around them).

(function_declaration body: (block) @span.function_body)
(method_declaration body: (block) @span.function_body)
(func_literal body: (block) @span.function_body)

(if_statement consequence: (block) @span.block_body)
(if_statement alternative: (block) @span.block_body)
(for_statement body: (block) @span.block_body)

(block (statement_list) @span.block)

(if_statement condition: (_) @span.condition)
(for_clause condition: (_) @span.condition)
(for_statement
  [
    (binary_expression)
    (unary_expression)
    (call_expression)
    (identifier)
    (selector_expression)
    (parenthesized_expression)
  ] @span.condition)

(call_expression arguments: (argument_list) @span.arguments) @span.call

[
  (expression_statement)
  (assignment_statement)
  (short_var_declaration)
  (inc_statement)
  (dec_statement)
  (send_statement)
  (var_declaration)
  (const_declaration)
  (return_statement)
  (go_statement)
  (defer_statement)
  (break_statement)
  (continue_statement)
  (goto_statement)
  (if_statement)
  (for_statement)
  (expression_switch_statement)
  (type_switch_statement)
  (select_statement)
] @span.statement
