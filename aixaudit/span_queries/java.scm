; Span query for Java (capture names are fixed: see aixaudit/spans.py).
; Bodies are the whole `{...}` node; conditions are the expression inside the parentheses.

(method_declaration body: (block) @span.function_body)
(constructor_declaration body: (constructor_body) @span.function_body)
(lambda_expression body: (block) @span.function_body)

(if_statement consequence: (block) @span.block_body)
(if_statement alternative: (block) @span.block_body)
(for_statement body: (block) @span.block_body)
(enhanced_for_statement body: (block) @span.block_body)
(while_statement body: (block) @span.block_body)
(do_statement body: (block) @span.block_body)
(try_statement body: (block) @span.block_body)
(try_with_resources_statement body: (block) @span.block_body)
(catch_clause body: (block) @span.block_body)
(finally_clause (block) @span.block_body)
(synchronized_statement body: (block) @span.block_body)

[(block) (constructor_body)] @span.block

(if_statement condition: (parenthesized_expression (_) @span.condition))
(while_statement condition: (parenthesized_expression (_) @span.condition))
(do_statement condition: (parenthesized_expression (_) @span.condition))
(for_statement condition: (_) @span.condition)
(ternary_expression condition: (_) @span.condition)

(method_invocation arguments: (argument_list) @span.arguments) @span.call
(object_creation_expression arguments: (argument_list) @span.arguments) @span.call

[
  (expression_statement)
  (local_variable_declaration)
  (return_statement)
  (throw_statement)
  (yield_statement)
  (assert_statement)
  (break_statement)
  (continue_statement)
  (if_statement)
  (for_statement)
  (enhanced_for_statement)
  (while_statement)
  (do_statement)
  (try_statement)
  (try_with_resources_statement)
  (switch_expression)
  (synchronized_statement)
] @span.statement
